"""``photo_motion``: a photo with a box filmed by a moving virtual camera (one domain per box).

The camera follows the box with a smooth random trajectory (:func:`mix_camera.follow_box`), so
the target moves, zooms and rolls in the frame while the scene around it stays real; the box
is warped with the frames' own matrices, so it is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m5l_core.datasets.mix_camera import follow_box, shrink_for, warp, warp_box
from m5l_core.datasets.mix_config import CameraMotionConfig, GreyThermalConfig, PhotoMotionConfig
from m5l_core.datasets.mix_inputs import BoxedObject, annotated_objects, gather, read_rgb, usable
from m5l_core.datasets.mix_look import draw_look, scene_velocity


@dataclass(frozen=True)
class RenderedSequence:
    """A sequence in memory: frames, one ``x, y, w, h`` box per frame (float px), what it was made from."""

    rgb: list[np.ndarray]
    thermal: list[np.ndarray]
    boxes: np.ndarray
    info: dict = field(default_factory=dict)


def seeded_order(count: int, seed: int, salt: str) -> np.ndarray:
    """A permutation of the inputs: sequence ``i`` uses input ``order[i % count]``, so every input is
    used once before any is reused, whatever the number of sequences."""
    return np.random.default_rng([seed, *salt.encode()]).permutation(count)


def film_still(rgb: np.ndarray, thermal: np.ndarray | None, box: np.ndarray, out_size: tuple[int, int],
               n_frames: int, motion: CameraMotionConfig, grey: GreyThermalConfig | None,
               rng: np.random.Generator) -> RenderedSequence:
    """Film ``box`` of a still photo (and its aligned thermal image, when there is one)."""
    size = (rgb.shape[1], rgb.shape[0])
    matrices = follow_box(box, size, out_size, n_frames, motion, rng)
    look = draw_look(motion, grey if thermal is None else None, n_frames, rng)
    rgb_src, rgb_matrices = shrink_for(rgb, matrices)
    thermal_src, thermal_matrices = shrink_for(thermal, matrices) if thermal is not None else (None, None)
    boxes = np.stack([warp_box(box, matrix) for matrix in matrices])
    rgb_frames, thermal_frames = [], []
    for t in range(n_frames):
        frame = warp(rgb_src, rgb_matrices[t], out_size)
        heat = warp(thermal_src, thermal_matrices[t], out_size) if thermal_src is not None else None
        centre = boxes[t, :2] + boxes[t, 2:] / 2 - 0.5
        frame, heat = look.finish(t, frame, heat, scene_velocity(matrices, t, centre), rng)
        rgb_frames.append(frame)
        thermal_frames.append(heat)
    return RenderedSequence(rgb_frames, thermal_frames, boxes)


class PhotoMotionSource:
    """Every usable box of the configured photos, filmed in a seeded order."""

    key = "mix.photo_motion"

    def __init__(self, config: PhotoMotionConfig, seed: int):
        self.config = config
        key = f"{self.key}.roots"

        def boxes(root: Path) -> list[BoxedObject]:
            return usable(annotated_objects(root, "boxes", key), config.min_box_side, config.max_box_fraction)

        self.objects = gather(config.roots, key, config.sequences, boxes)
        self.order = seeded_order(len(self.objects), seed, "photo_motion")

    def render(self, index: int, rng: np.random.Generator) -> RenderedSequence:
        item = self.objects[self.order[index % len(self.objects)]]
        config = self.config
        made = film_still(read_rgb(item.image), None, item.box, (config.width, config.height), config.frames,
                          config.motion, config.thermal, rng)
        info = {"image": str(item.image), "box": [round(float(v), 2) for v in item.box]}
        return RenderedSequence(made.rgb, made.thermal, made.boxes, info)
