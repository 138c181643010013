"""VGG-M conv1-3 feature stream (RT-MDNet variant) and its initialisation from MatConvNet.

RT-MDNet layout: conv1 96x7x7/2 + ReLU + LRN + maxpool 3/2; conv2 256x5x5/2 + ReLU + LRN with
*no* pool after it (keeps stride 8 instead of 16, so 3x3 RoIAlign on small targets still sees
distinct cells); conv3 512x3x3 with dilation 3 + ReLU (restores the receptive field the missing
pool would have given). No padding, so stride and receptive field follow roi_align.py.

LRN: VGG-M (and MatConvNet's ``imagenet-vgg-m.mat``) normalises across 5 channels with
``x / (k + alpha * sum x^2) ** beta``, k=2, alpha=1e-4, beta=0.75. torch's ``local_response_norm``
divides alpha by the window size, so we pass ``alpha * size``. (RT-MDNet's own code uses a
1-channel window; ``lrn_size=1`` reproduces it.)

Initial weights come from one of two files, told apart by content (:func:`load_vggm_into`): a
MatConvNet ``imagenet-vgg-m.mat`` (the same conv1-3 for both streams) or the result of
``m5l-distill`` (a torch file of format :data:`DISTILLED_FORMAT`, its own conv1-3 per modality).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from m5l_core.models.config import ModelConfig

CONV_SHAPES = ((96, 3, 7, 7), (256, 96, 5, 5), (512, 256, 3, 3))  # (Cout, Cin, kH, kW) of conv1-3
MAT_LAYER_INDICES = (0, 4, 8)  # conv1-3 in imagenet-vgg-m.mat's `layers` (conv, relu, norm, pool, ...)
FEATURE_CHANNELS = 512
CONV_NAMES = ("conv1", "conv2", "conv3")
DISTILLED_FORMAT = "m5l-distilled-vggm"  # written by m5l_core.distill.result
DISTILLED_VERSION = 1
DISTILLED_STREAMS = ("rgb", "thermal")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes zip archives; MatConvNet files start with "MATLAB"


class VggmInitError(ValueError):
    """The VGG-M .mat file is missing, unreadable or not in the MatConvNet layout."""


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN with MatConvNet's parameterisation (alpha multiplies the plain sum)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self._bands: dict[tuple[int, torch.device], Tensor] = {}   # built once per channel count/device

    def forward(self, x: Tensor) -> Tensor:
        # The window sum over channels is one matmul with a banded 0/1 matrix: the same numbers as
        # F.local_response_norm (zero padding at the channel ends), ~4x faster on CPU, where
        # torch's avg_pool3d-based LRN cost more than conv1-3 together. float32, like autocast's
        # policy for LRN: powers of bfloat16 sums would lose too much.
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            squares = (x * x).permute(0, 2, 3, 1)
            window = torch.matmul(squares, self._band(x.shape[1], x.device)).permute(0, 3, 1, 2)
            return x * (window * self.alpha + self.k).pow(-self.beta)

    def _band(self, channels: int, device: torch.device) -> Tensor:
        """(C, C) matrix whose column c sums the ``size`` channels centred on c."""
        key = (channels, device)
        if key not in self._bands:
            index = torch.arange(channels, device=device)
            offset = index[:, None] - index[None, :]     # input channel minus output channel
            self._bands[key] = ((offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)).float()
        return self._bands[key]


def make_vggm_stream(config: ModelConfig) -> nn.Sequential:
    """One VGG-M conv1-3 stream; M5L calls this twice (RGB and thermal) with the same config."""
    def lrn() -> nn.Module:
        return LocalResponseNorm(config.lrn_size, config.lrn_alpha, config.lrn_beta, config.lrn_k)

    stream = nn.Sequential()
    stream.add_module("conv1", nn.Conv2d(3, 96, kernel_size=7, stride=2))
    stream.add_module("relu1", nn.ReLU())
    stream.add_module("norm1", lrn())
    stream.add_module("pool1", nn.MaxPool2d(kernel_size=3, stride=2))
    stream.add_module("conv2", nn.Conv2d(96, 256, kernel_size=5, stride=2))
    stream.add_module("relu2", nn.ReLU())
    stream.add_module("norm2", lrn())
    stream.add_module("conv3", nn.Conv2d(256, FEATURE_CHANNELS, kernel_size=3, stride=1, dilation=3))
    stream.add_module("relu3", nn.ReLU())
    init_stream_random(stream)
    return stream


def conv_layers(stream: nn.Sequential) -> list[nn.Conv2d]:
    return [stream.conv1, stream.conv2, stream.conv3]


def init_stream_random(stream: nn.Sequential) -> None:
    """Kaiming-normal conv weights (ReLU follows every conv), zero bias.

    Random conv features are weak for tracking; this mode exists for tests and for training
    from scratch when no ``imagenet-vgg-m.mat`` is available.
    """
    for conv in conv_layers(stream):
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)


def read_vggm_mat(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (Cout,Cin,kH,kW), bias (Cout,)) for conv1-3 from a MatConvNet ``imagenet-vgg-m.mat``."""
    import scipy.io  # local import: only this optional path needs scipy

    try:
        layers = scipy.io.loadmat(os.fspath(path))["layers"][0]
    except FileNotFoundError:
        raise VggmInitError(f"{path}: VGG-M weights file not found") from None
    except KeyError:
        raise VggmInitError(f"{path}: no 'layers' variable (expected MatConvNet imagenet-vgg-m.mat)"
                            ) from None
    except Exception as err:  # scipy raises several types for non-.mat content
        raise VggmInitError(f"{path}: not a readable .mat file ({err})") from None
    pairs = zip(MAT_LAYER_INDICES, CONV_SHAPES, strict=True)
    return [_read_conv(layers, index, shape, path) for index, shape in pairs]


def _read_conv(layers: Sequence, index: int, shape: tuple[int, ...], path) -> tuple[np.ndarray, np.ndarray]:
    where = f"{path}: layers[{index}]"
    try:
        weight, bias = layers[index]["weights"].item()[0]
    except (IndexError, KeyError, ValueError, TypeError) as err:
        raise VggmInitError(f"{where}: expected a struct with 'weights' = (W, b) ({err})") from None
    weight = np.transpose(np.asarray(weight, dtype=np.float32), (3, 2, 0, 1))  # HxWxCinxCout -> torch
    bias = np.asarray(bias, dtype=np.float32).reshape(-1)
    if weight.shape != shape or bias.shape != (shape[0],):
        raise VggmInitError(f"{where}: weights {weight.shape} / bias {bias.shape} do not match VGG-M "
                            f"conv {shape} (after HxWxCinxCout -> CoutxCinxHxW)")
    return weight, bias


def read_distilled_vggm(path: str | os.PathLike) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """``{"rgb": [(weight, bias)] * 3, "thermal": [...]}`` from an ``m5l-distill`` result file."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise VggmInitError(f"{path}: not a readable torch file ({type(err).__name__})") from None
    found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
    if found != DISTILLED_FORMAT:
        raise VggmInitError(f"{path}: a torch file of format {found!r}, not VGG-M weights: vggm:PATH takes "
                            f"imagenet-vgg-m.mat or an m5l-distill result ({DISTILLED_FORMAT!r}); an m5l "
                            "checkpoint initialises with checkpoint:PATH")
    if raw.get("version") != DISTILLED_VERSION:
        raise VggmInitError(f"{path}: {DISTILLED_FORMAT} version {raw.get('version')!r} is not supported "
                            f"(this code reads version {DISTILLED_VERSION})")
    return {name: _distilled_convs(raw.get(name), f"{path}: {name}") for name in DISTILLED_STREAMS}


def _distilled_convs(weights, where: str) -> list[tuple[Tensor, Tensor]]:
    if not isinstance(weights, dict):
        raise VggmInitError(f"{where}: expected a dict of conv1-3 tensors, got {type(weights).__name__}")
    convs = []
    for name, shape in zip(CONV_NAMES, CONV_SHAPES, strict=True):
        weight, bias = weights.get(f"{name}.weight"), weights.get(f"{name}.bias")
        if not (torch.is_tensor(weight) and torch.is_tensor(bias)):
            raise VggmInitError(f"{where}: {name}.weight or {name}.bias is missing")
        if tuple(weight.shape) != shape or tuple(bias.shape) != (shape[0],):
            raise VggmInitError(f"{where}: {name} weights {tuple(weight.shape)} / bias {tuple(bias.shape)} "
                                f"do not match VGG-M conv {shape}")
        convs.append((weight.float(), bias.float()))
    return convs


def load_vggm_into(streams: Sequence[nn.Sequential], path: str | os.PathLike) -> None:
    """Copy conv1-3 from ``path`` into ``streams`` (RGB first, then thermal).

    A MatConvNet ``imagenet-vgg-m.mat`` gives every stream the same weights (the paper's start);
    an ``m5l-distill`` result gives the RGB stream its ``rgb`` weights and the thermal stream its
    ``thermal`` ones. The file's content decides which it is, not its name; any other file is a
    :class:`VggmInitError` saying what it is and what vggm:PATH takes.
    """
    if not Path(path).is_file():
        raise VggmInitError(f"{path}: VGG-M weights file not found")
    with open(path, "rb") as handle:
        is_torch_file = handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if is_torch_file:
        distilled = read_distilled_vggm(path)
        if len(streams) != len(DISTILLED_STREAMS):
            raise ValueError(f"{path}: a distilled file initialises exactly two streams (RGB, thermal), "
                             f"got {len(streams)}")
        per_stream = [distilled[name] for name in DISTILLED_STREAMS]
    else:
        weights = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in read_vggm_mat(path)]
        per_stream = [weights] * len(streams)
    with torch.no_grad():
        for stream, convs in zip(streams, per_stream, strict=True):
            for conv, (weight, bias) in zip(conv_layers(stream), convs, strict=True):
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)


def conv3_size(input_size: int) -> int:
    """Side of the conv3 map for an input side (no padding): ``(input - 75) // 8 + 1`` for valid inputs."""
    size = (input_size - 7) // 2 + 1      # conv1 /2
    size = (size - 3) // 2 + 1            # pool1 3/2
    size = (size - 5) // 2 + 1            # conv2 /2
    return max(size - 6, 0)               # conv3, dilation 3 -> effective 7x7
