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
    """``auto`` -> ``bfloat16`` on a CPU that reports native bf16 matmuls, else ``float32``;
    ``fastest`` -> whichever of the two a one-time probe finds faster on this CPU.

    On the AMD EPYC of sessions 1-24 (AVX512-BF16) bf16 ran the fc layers of candidate scoring and
    online updates about 3x faster, the Lite0 trunk 1.4x; on the Intel Xeon of sessions 25-27, which
    reports the same flag, every stage is slower in bf16 (conv features 32 against 23 ms, updates
    117-123 against 73: README, "Speed"). The flag does not tell, so the node asks for ``fastest``;
    ``auto`` stays flag-based, so offline results do not hang on a timing. GPUs keep float32: they
    are fast enough and the results then match the reference exactly.
    """
    if precision == "fastest":
        return faster_cpu_precision() if device.type == "cpu" else "float32"
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cpu" and cpu_has_native_bf16() else "float32"


BF16_MARGIN = 0.8   # bf16 only when it takes at most this share of float32's time (a clear win)


@functools.cache
def faster_cpu_precision() -> str:
    """``bfloat16`` or ``float32``, the faster here; measured once per process (~0.1 s)."""
    if not cpu_has_native_bf16():
        return "float32"
    clear_win = probe_seconds(torch.bfloat16) <= BF16_MARGIN * probe_seconds(torch.float32)
    return "bfloat16" if clear_win else "float32"


def probe_seconds(dtype: torch.dtype) -> float:
    """Seconds for a tracker-sized fc layer (256 candidates, 2016 -> 512) and a 1x1 convolution of
    an early trunk map in ``dtype``, at torch's current thread count (the best of three rounds
    after one that pays for the kernels' set-up)."""
    generator = torch.Generator().manual_seed(0)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    fc_in, fc_weight = random(256, 2016), random(512, 2016)
    maps = random(1, 96, 72, 72).contiguous(memory_format=torch.channels_last)
    kernel = random(96, 96, 1, 1).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(4):
            start = time.perf_counter()
            torch.nn.functional.linear(fc_in, fc_weight)
            torch.nn.functional.conv2d(maps, kernel)
            best = min(best, time.perf_counter() - start)
    return best


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
