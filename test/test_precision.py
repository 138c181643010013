"""``runtime.precision``: ``fastest`` picks by a probe on the CPU, never on a GPU."""

from __future__ import annotations

import pytest
import torch
from test_tracking import fast_config, tiny_model

from m5l_core.config import ConfigError
from m5l_core.tracking import M5LTracker, runtime
from m5l_core.tracking.runtime import faster_cpu_precision, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def fresh_probe():
    faster_cpu_precision.cache_clear()
    yield
    faster_cpu_precision.cache_clear()


def test_fastest_on_the_cpu_is_the_probe_s_answer_and_stays_for_the_process(fresh_probe):
    first = resolve_precision(CPU, "fastest")
    assert first in ("float32", "bfloat16")
    assert resolve_precision(CPU, "fastest") == first == faster_cpu_precision()
    assert faster_cpu_precision.cache_info().misses == 1


def test_a_cpu_without_bf16_is_not_probed(fresh_probe, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(torch.nn.functional, "linear", None)   # a probe would fail loudly
    assert resolve_precision(CPU, "fastest") == "float32"


def test_the_probe_keeps_bf16_only_for_a_clear_win(fresh_probe, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    seconds = {torch.float32: 1.0, torch.bfloat16: 0.9}     # 10 % faster: within the noise margin
    monkeypatch.setattr(runtime, "probe_seconds", seconds.get)
    assert faster_cpu_precision() == "float32"
    faster_cpu_precision.cache_clear()
    seconds[torch.bfloat16] = 0.5
    assert faster_cpu_precision() == "bfloat16"


def test_the_probe_times_both_precisions():
    for dtype in (torch.float32, torch.bfloat16):
        assert 0 < runtime.probe_seconds(dtype) < float("inf")


def test_gpus_keep_float32_and_an_unknown_precision_is_refused():
    assert resolve_precision(CUDA, "fastest") == "float32"
    model, config = tiny_model()
    tracker = M5LTracker(model, config, fast_config(runtime={"precision": "fastest"}), "cpu")
    assert tracker.precision in ("float32", "bfloat16")
    with pytest.raises(ConfigError, match="precision"):
        fast_config(runtime={"precision": "half"})
