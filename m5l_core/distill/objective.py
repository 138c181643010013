"""Teacher, students and the distillation loss.

Loss: mean squared error between the student's adapted conv3 features and the teacher's features
at the same receptive-field centres, *standardised per channel* with a mean and std measured once
on the training crops. Why standardised MSE (and not cosine, or raw MSE): Lite0's channels differ
in scale by orders of magnitude, so raw MSE would teach the few loudest channels only;
standardising gives every channel the same say, and then the loss reads as the share of the
teacher's variance the student leaves unexplained (1.0 = predicting the mean map, 0 = a perfect
copy). Cosine would discard the per-cell magnitude that the tracker's fc layers do see; it is
logged as a diagnostic only.

Adapter: per-channel normalisation (batch statistics) and a learnt 1x1 conv 512 -> 112 on top of
conv3+ReLU. It is thrown away afterwards: the student only has to hold the teacher's information
linearly, not in the teacher's own basis or scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from m5l_core.distill.config import DistillConfig
from m5l_core.distill.geometry import sample_at_student_cells
from m5l_core.models import ModelConfig
from m5l_core.models.effnet import OUT_CHANNELS, EfficientNetLite0Trunk, load_imagenet_weights
from m5l_core.models.vggm import FEATURE_CHANNELS, make_vggm_stream


@dataclass(frozen=True)
class FeatureStats:
    """Per-channel mean and std of the teacher's features at student cells (tensors of shape (C,))."""

    mean: Tensor
    std: Tensor

    def standardise(self, features: Tensor) -> Tensor:
        return (features - self.mean[:, None, None]) / self.std[:, None, None]

    def to_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.detach().cpu().clone(), "std": self.std.detach().cpu().clone()}

    @classmethod
    def from_maps(cls, maps: list[Tensor]) -> FeatureStats:
        """Statistics over every batch item and cell of ``maps`` (each ``(B, C, h, w)``)."""
        values = torch.cat([m.double().permute(1, 0, 2, 3).flatten(1) for m in maps], dim=1)
        std = values.std(dim=1)
        # A channel that hardly moved in the sample would be divided into noise; floor its std
        # at 1% of the typical one so it cannot dominate the loss.
        std = std.clamp_min(0.01 * float(std.mean()))
        return cls(values.mean(dim=1).float(), std.float())


class StudentStream(nn.Module):
    """VGG-M conv1-3 (the stream M5L will use) plus the 1x1 adapter to the teacher's channels."""

    def __init__(self, teacher_channels: int = OUT_CHANNELS):
        super().__init__()
        self.stream = make_vggm_stream(ModelConfig())
        projection = nn.Conv2d(FEATURE_CHANNELS, teacher_channels, kernel_size=1)
        # Zero start: the first prediction is the mean map, so the loss starts near 1.0 instead of
        # at the size of random 512-channel projections.
        nn.init.zeros_(projection.weight)
        nn.init.zeros_(projection.bias)
        # VGG-M's features are tens of units large (inputs are pixels - 128): Adam's fixed step per
        # weight would move a 512-input projection by whole units per step and the loss would jump.
        # Normalising its input (batch statistics; the adapter is discarded after distillation)
        # makes the step size independent of that scale. No running statistics: nothing ever uses
        # them, and without them a forward pass changes no state (evaluations leave runs identical).
        normalise = nn.BatchNorm2d(FEATURE_CHANNELS, affine=False, track_running_stats=False)
        self.adapter = nn.Sequential(normalise, projection)

    def forward(self, images: Tensor) -> Tensor:
        return self.adapter(self.stream(images))


def build_teacher(config: DistillConfig) -> nn.Module:
    """The frozen ImageNet teacher (eval mode, no gradients)."""
    teacher = EfficientNetLite0Trunk()
    load_imagenet_weights(teacher, config.teacher_weights or None)
    return freeze(teacher)


def freeze(teacher: nn.Module) -> nn.Module:
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def teacher_at_cells(teacher: nn.Module, images: Tensor, student_size: tuple[int, int], name: str) -> Tensor:
    """The teacher's features on ``images`` at the receptive-field centres of the student's cells."""
    return sample_at_student_cells(teacher(images), student_size, name)


def distill_loss(prediction: Tensor, target: Tensor) -> tuple[Tensor, float]:
    """(MSE on standardised features, mean per-cell cosine similarity for the log)."""
    loss = F.mse_loss(prediction, target)
    with torch.no_grad():
        cosine = F.cosine_similarity(prediction, target, dim=1).mean().item()
    return loss, cosine
