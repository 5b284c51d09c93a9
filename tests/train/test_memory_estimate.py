"""The memory estimate made before a training run, and the refusal of runs that cannot fit."""

from __future__ import annotations

import pytest
import torch

from neuript.model import NeurIPT
from neuript.runtime import OptionError
from neuript.train.memory import (MemoryEstimate, available_memory, check_training_memory, estimate_training_memory,
                                  parse_bytes)

NAMES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"]


def _model(tiny, **kw):
    return NeurIPT(n_outputs=1, n_chans=len(NAMES), n_times=128, sfreq=64.0, ch_names=NAMES, **{**tiny, **kw})


def _loss_of(model):
    def loss_of(n):
        return model(torch.randn(n, len(NAMES), 128)).mean() + model.aux_loss
    return loss_of


def _saved_bytes_of_step(model, n):
    """Bytes autograd keeps for the backward pass of a real forward at batch n (the quantity estimated)."""
    from neuript.train.memory import _saved_bytes

    return _saved_bytes(lambda: _loss_of(model)(n))


def test_activation_estimate_is_linear_in_the_batch_and_matches_a_real_forward(tiny_overrides):
    model = _model(tiny_overrides)
    est = estimate_training_memory(model, _loss_of(model), batch_size=8)
    assert est.per_window_bytes > 0 and est.micro_batch_size == 8
    # the estimate at batch 8 (extrapolated from batches 1 and 2) against the bytes a batch-8 forward saves
    from neuript.train.memory import BACKWARD_FACTOR

    measured = _saved_bytes_of_step(model, 8) * BACKWARD_FACTOR
    assert est.step_bytes() == pytest.approx(measured, rel=0.05)
    # micro-batches cut the activations, not the state
    est_micro = estimate_training_memory(model, _loss_of(model), batch_size=8, micro_batch_size=2)
    assert est_micro.step_bytes() < est.step_bytes() / 2
    assert est_micro.state_bytes == est.state_bytes


def test_checkpointing_lowers_the_estimate(tiny_overrides):
    plain = _model(tiny_overrides)
    ckpt = _model(tiny_overrides, grad_checkpointing=True)
    e_plain = estimate_training_memory(plain, _loss_of(plain), batch_size=16)
    e_ckpt = estimate_training_memory(ckpt, _loss_of(ckpt), batch_size=16)
    assert e_ckpt.per_window_bytes < e_plain.per_window_bytes
    assert ckpt.encoder.grad_checkpointing  # restored after the probe


def test_estimate_leaves_the_random_stream_and_the_model_untouched(tiny_overrides):
    model = _model(tiny_overrides)
    model.eval()
    torch.manual_seed(3)
    estimate_training_memory(model, _loss_of(model), batch_size=4)
    after = torch.rand(5)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(5))
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_optimizer_state_precision_is_counted(tiny_overrides):
    model = _model(tiny_overrides)
    fp32 = estimate_training_memory(model, _loss_of(model), batch_size=2)
    bf16 = estimate_training_memory(model, _loss_of(model), batch_size=2, optimizer_state="bf16")
    n = sum(p.numel() for p in model.parameters())
    assert fp32.state_bytes == n * 12 and bf16.state_bytes == n * 8


def _est(**kw):
    base = dict(batch_size=64, micro_batch_size=64, process_bytes=2**30, state_bytes=2**28,
                per_window_bytes=2**27, overhead_bytes=0)
    return MemoryEstimate(**{**base, **kw})


def test_refusal_names_the_micro_batch_that_fits():
    est = _est()  # 1 + 0.25 + 64 * 0.125 GiB = 9.25 GiB
    with pytest.raises(OptionError) as err:
        check_training_memory(est, command="neuript pretrain", available=4 * 2**30, fraction=1.0)
    msg = str(err.value)
    # (4 - 1.25) GiB / 0.125 GiB = 22 windows
    assert "--micro-batch 22" in msg and "--batch-size 22" in msg and "grad_checkpointing" in msg
    assert "9.25 GiB" in msg
    check_training_memory(est, command="x", available=10 * 2**30, fraction=1.0)  # fits: no error


def test_refusal_without_any_fitting_batch_still_says_what_to_do():
    with pytest.raises(OptionError, match="grad_checkpointing") as err:
        check_training_memory(_est(), command="neuript finetune", available=2**30, fraction=1.0)
    assert "--micro-batch" not in str(err.value)


def test_budget_cap_from_the_environment(monkeypatch):
    monkeypatch.setenv("NEURIPT_MAX_MEMORY", "1.5G")
    assert available_memory() <= parse_bytes("1.5G") == int(1.5 * 2**30)
    with pytest.raises(OptionError, match="NEURIPT_MAX_MEMORY"):
        check_training_memory(_est(), command="neuript pretrain")
    monkeypatch.setenv("NEURIPT_SKIP_MEMORY_CHECK", "1")
    check_training_memory(_est(), command="neuript pretrain")
    monkeypatch.setenv("NEURIPT_MAX_MEMORY", "lots")
    monkeypatch.delenv("NEURIPT_SKIP_MEMORY_CHECK")
    with pytest.raises(OptionError, match="not a size"):
        available_memory()


def test_finetune_cli_refuses_a_run_beyond_the_budget(stores, tmp_path, monkeypatch, capsys):
    import sys

    from neuript import cli

    monkeypatch.setenv("NEURIPT_MAX_MEMORY", "200M")  # below what the process alone holds
    monkeypatch.delenv("NEURIPT_DEBUG", raising=False)
    out = tmp_path / "ft"
    monkeypatch.setattr(sys, "argv", ["neuript", "finetune", str(stores["eegmat"]), "--out", str(out), "--epochs", "1",
                                      "--batch-size", "16", "--device", "cpu"])
    with pytest.raises(SystemExit) as ex:
        cli.main()
    assert ex.value.code == 1
    err = capsys.readouterr().err
    assert "needs about" in err and "NEURIPT_MAX_MEMORY" in err and "Traceback" not in err
    assert not list(out.glob("seed*/model/*.safetensors"))  # refused before training


def test_checkpointing_on_a_cpu_makes_glibc_return_freed_activations():
    import os
    import subprocess
    import sys

    from neuript.train.memory import allocator_in_use

    code = ("from neuript.train.memory import release_freed_activations as r; "
            "print(r('cpu', grad_checkpointing=False), r('cpu', grad_checkpointing=True))")
    env = {k: v for k, v in os.environ.items() if k not in ("NEURIPT_MALLOC", "MALLOC_MMAP_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expect = "False True" if allocator_in_use() == "glibc" else "False False"
    assert out.stdout.split()[-2:] == expect.split()
    env["NEURIPT_MALLOC"] = "default"  # the opt-out
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]
