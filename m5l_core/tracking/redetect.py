"""Re-detection after a loss: a coarse grid of candidates over the whole image, one tile per frame.

After ``after_lost`` failed frames the target has probably left the local search (out of view,
occluded, a jump). Candidates of the last good size are laid on a grid with a step of
``stride`` target sides over the whole image and grouped into square tiles of ``tile`` target
sides; each frame scores one tile (one crop at most ``search.max_area_ratio`` ordinary crops,
at a coarser scale where the tile needs it, and fewer candidates than the local search), in
raster order, starting again after the last tile. The
tracker takes a tile's best candidate when it scores like a good frame and better than the
local search.
"""

from __future__ import annotations

import numpy as np

from m5l_core.tracking.config import RedetectConfig


class TileSweep:
    def __init__(self, config: RedetectConfig, image_size: tuple[int, int]):
        self.config = config
        self.image_size = image_size
        self._tiles: list[np.ndarray] = []
        self._next = 0

    @property
    def active(self) -> bool:
        return bool(self._tiles)

    @property
    def tiles(self) -> int:
        return len(self._tiles)

    def start(self, size: np.ndarray) -> None:
        """Lay the grid for a target of ``size`` (w, h); the sweep begins with the first tile."""
        self._tiles = grid_tiles(np.asarray(size, dtype=np.float64), self.image_size, self.config.stride,
                                 self.config.tile)
        self._next = 0

    def stop(self) -> None:
        self._tiles = []
        self._next = 0

    def next_tile(self) -> np.ndarray:
        """The candidate boxes (x, y, w, h) of the next tile."""
        tile = self._tiles[self._next]
        self._next = (self._next + 1) % len(self._tiles)
        return tile


def grid_tiles(size: np.ndarray, image_size: tuple[int, int], stride: float, tile: float) -> list[np.ndarray]:
    """Boxes of ``size`` centred on a grid covering the image, grouped by square tiles."""
    width, height = image_size
    side = float(size.mean())
    step = max(stride * side, 1.0)
    cx = np.arange(step / 2, width, step)
    cy = np.arange(step / 2, height, step)
    tile_px = max(tile * side, step)
    tiles = []
    for y0 in np.arange(0, height, tile_px):
        for x0 in np.arange(0, width, tile_px):
            xs = cx[(cx >= x0) & (cx < x0 + tile_px)]
            ys = cy[(cy >= y0) & (cy < y0 + tile_px)]
            if len(xs) == 0 or len(ys) == 0:
                continue
            gx, gy = np.meshgrid(xs, ys)
            centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
            tiles.append(np.concatenate([centres - size / 2, np.tile(size, (len(centres), 1))], axis=1))
    return tiles
