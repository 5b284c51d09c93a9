"""``--precision auto``: bf16 only where the hardware computes it natively."""

import pytest
import torch

from neuript import runtime
from neuript.runtime import OptionError, autocast, resolve_precision


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU does / does not have native bf16 (``native_cpu_bf16`` is cached per process)."""
    def set_(value: bool):
        monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: value)
    return set_


@pytest.mark.parametrize("native, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_follows_the_cpu(cpu_bf16, native, expected):
    cpu_bf16(native)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("native", [False, True])
def test_explicit_precision_is_kept(cpu_bf16, native):
    cpu_bf16(native)
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_is_an_option_error():
    with pytest.raises(OptionError, match="precision"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("native, dtype", [(False, torch.float32), (True, torch.bfloat16)])
def test_autocast_auto_runs_the_resolved_precision(cpu_bf16, native, dtype):
    cpu_bf16(native)
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "auto"):
        assert (a @ a).dtype == dtype


def test_native_cpu_bf16_is_a_bool():
    assert isinstance(runtime.native_cpu_bf16(), bool)
