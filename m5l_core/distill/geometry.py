"""Which teacher feature each student cell learns: receptive-field centres mapped between the maps.

Student (VGG-M conv3, no padding): cell ``j`` sees input pixels ``[8j, 8j + 75)``, centre ``8j + 37.5``.
Teacher (EfficientNet-Lite0 at stride 8, symmetric padding): cell ``i`` is centred on ``8i + 0.5``.
Both numbers come from :data:`m5l_core.models.backbones.GEOMETRIES`, the one home of that geometry.
So student cell ``j`` lies at teacher index ``(8j + 37.5 - 0.5) / 8 = j + 4.625``: between teacher
cells, which is why the teacher map is resampled (bilinearly) rather than cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from m5l_core.models.backbones import backbone_geometry

STUDENT = "vggm"


def teacher_index(student_cells: int, teacher: str) -> Tensor:
    """Fractional teacher-map index under the receptive-field centre of each student cell (one axis)."""
    student_geo, teacher_geo = backbone_geometry(STUDENT), backbone_geometry(teacher)
    centres = torch.arange(student_cells, dtype=torch.float32) * student_geo.stride + student_geo.offset
    return (centres - teacher_geo.offset) / teacher_geo.stride


def sample_at_student_cells(teacher_map: Tensor, student_size: tuple[int, int], teacher: str) -> Tensor:
    """``(B, C, h_t, w_t)`` teacher map -> ``(B, C, h, w)``: its value at every student cell's centre."""
    batch, _, rows, cols = teacher_map.shape
    height, width = student_size
    # align_corners=True: -1 and +1 are the centres of the first and last teacher cells, so an index
    # i maps to 2 i / (n - 1) - 1 exactly.
    ys = teacher_index(height, teacher) * (2.0 / max(rows - 1, 1)) - 1.0
    xs = teacher_index(width, teacher) * (2.0 / max(cols - 1, 1)) - 1.0
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)   # (h, w, [x, y])
    grid = grid.to(device=teacher_map.device, dtype=teacher_map.dtype).expand(batch, height, width, 2)
    return F.grid_sample(teacher_map, grid, mode="bilinear", padding_mode="border", align_corners=True)
