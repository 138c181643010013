"""Device, precision, per-stage timing and a private random stream for the tracker."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from m5l_core.config import ConfigError
from m5l_core.preprocess import padded_to, to_network_input


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch understands it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return resolved


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` -> ``bfloat16`` on a CPU with native bf16 matmuls, else ``float32``.

    On this project's CPU (AVX512-BF16) bf16 runs the fc layers of candidate scoring and online
    updates about 3x faster; without native support bf16 is emulated and slower. GPUs keep
    float32: they are fast enough and the results then match the reference exactly.
    """
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cpu" and cpu_has_native_bf16() else "float32"


def resolve_input_multiple(device: torch.device, multiple: int) -> int:
    """``0`` -> 32 on CUDA (cuDNN plans a convolution per input shape, ~200 ms a frame for a
    trunk meeting a new crop size every frame), 1 on the CPU (padding would only add work)."""
    if multiple:
        return multiple
    return 32 if device.type == "cuda" else 1


class NetworkInput:
    """Crops -> the conv layers' input on ``device``: pixel mean subtracted, padded to the input
    multiple, in channels-last layout on the CPU (faster there; on CUDA cuDNN plans a new shape
    in ~30 ms in the default layout against ~1 s channels-last)."""

    def __init__(self, device: torch.device, runtime) -> None:
        self.device = device
        self.multiple = resolve_input_multiple(device, runtime.input_multiple)
        channels_last = runtime.channels_last and device.type == "cpu"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, *crops, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
        """The crops as inputs, first padded to ``size`` (width, height) where given."""
        return tuple(padded_to(to_network_input(crop, self.device), size, self.multiple)
                     .contiguous(memory_format=self.memory_format) for crop in crops)


@functools.cache
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_factory(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A context-manager factory running matmuls/convs in ``precision`` (already resolved)."""
    if precision == "float32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


class StageTimer:
    """Wall-clock seconds per named stage; synchronises CUDA so a stage is charged its own work."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class PrivateTorchRng:
    """A torch random stream owned by one tracker (head init, dropout).

    The global generator is saved and restored around each use, so a tracker is deterministic
    for its seed whatever else the process draws, and it leaves other code's streams alone.
    """

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self._cuda = device.type == "cuda"
        with self._forked():
            torch.manual_seed(seed)
            self._save()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with self._forked():
            torch.set_rng_state(self._cpu_state)
            if self._cuda:
                torch.cuda.set_rng_state(self._cuda_state, self.device)
            try:
                yield
            finally:
                self._save()

    def _forked(self):
        devices = [self.device.index or 0] if self._cuda else []
        return torch.random.fork_rng(devices=devices)

    def _save(self) -> None:
        self._cpu_state = torch.get_rng_state()
        if self._cuda:
            self._cuda_state = torch.cuda.get_rng_state(self.device)
