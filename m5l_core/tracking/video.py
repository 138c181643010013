"""MP4 of a tracked sequence: RGB and thermal side by side, boxes, score and modality weights.

The thermal half is the frame the tracker saw (normalised and registered to the RGB grid by
``prepare_pair``), so the same boxes are drawn on both halves. Green = ground truth, red =
tracker result (yellow while the tracker reports a failure). The file is H.264 written by the
ffmpeg binary bundled with ``imageio-ffmpeg`` (works offline), to a temporary name renamed on
``close``: an interrupted run never leaves a truncated video under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from m5l_core.tracking.api import TrackResult

GT_COLOUR = (0, 220, 0)
RESULT_COLOUR = (255, 40, 40)
LOST_COLOUR = (255, 220, 0)


class OverlayVideoWriter:
    """Append annotated frame pairs; ``close`` finalises the MP4. Use as a context manager."""

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, max_width: int = 1280):
        import imageio.v2 as imageio  # local: only video output needs ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self._writer = imageio.get_writer(self._tmp, fps=fps, codec="libx264", macro_block_size=1,
                                          ffmpeg_log_level="error", pixelformat="yuv420p")
        self.max_width = max_width
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> OverlayVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(keep=exc_type is None)

    def write(self, rgb: np.ndarray, thermal: np.ndarray, index: int, gt=None,
              result: TrackResult | None = None, init_box=None) -> None:
        """One frame; ``result`` None with ``init_box`` marks the initialisation frame."""
        panel = annotate_pair(rgb, thermal, index, gt, result, init_box)
        if self._size is None:
            scale = min(1.0, self.max_width / panel.shape[1])
            # yuv420p needs even sides.
            self._size = (int(panel.shape[1] * scale) // 2 * 2, int(panel.shape[0] * scale) // 2 * 2)
        if (panel.shape[1], panel.shape[0]) != self._size:
            panel = cv2.resize(panel, self._size, interpolation=cv2.INTER_AREA)
        self._writer.append_data(panel)

    def close(self, keep: bool = True) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if keep and self._size is not None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def annotate_pair(rgb: np.ndarray, thermal: np.ndarray, index: int, gt=None,
                  result: TrackResult | None = None, init_box=None) -> np.ndarray:
    """``H x 2W x 3`` uint8 panel: annotated RGB | annotated thermal, with a text line on top."""
    halves = [np.ascontiguousarray(rgb).copy(), np.ascontiguousarray(thermal).copy()]
    box = result.box if result is not None else init_box
    colour = RESULT_COLOUR if result is None or result.success else LOST_COLOUR
    for half in halves:
        if gt is not None and np.all(np.isfinite(gt)) and gt[2] > 0 and gt[3] > 0:
            _rectangle(half, gt, GT_COLOUR)
        if box is not None:
            _rectangle(half, box, colour)
    panel = np.concatenate(halves, axis=1)
    _caption(panel, _caption_text(index, result))
    return panel


def _caption_text(index: int, result: TrackResult | None) -> str:
    if result is None:
        return f"#{index}  init"
    state = "ok" if result.success else "LOST"
    return (f"#{index}  score {result.score:+.2f} {state}  "
            f"w_rgb {result.rgb_weight:.2f}  w_t {result.thermal_weight:.2f}")


def _rectangle(image: np.ndarray, box, colour) -> None:
    x, y, w, h = (float(v) for v in box)
    thickness = max(1, round(image.shape[0] / 240))
    cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), colour, thickness)


def _caption(panel: np.ndarray, text: str) -> None:
    scale = max(0.4, panel.shape[0] / 600)
    thickness = max(1, round(scale * 1.5))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(panel, (0, 0), (width + 8, height + base + 8), (0, 0, 0), -1)
    cv2.putText(panel, text, (4, height + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
