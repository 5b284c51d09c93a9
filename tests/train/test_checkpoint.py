"""Training checkpoints: complete round trip (weights, AdamW moments, OneCycle, RNG) and clear mismatch errors."""

import json

import pytest
import torch

from neuript.train.checkpoint import (
    CheckpointError,
    has_checkpoint,
    load_training_state,
    save_training_state,
    write_json_atomic,
)


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=5e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=20, pct_start=0.15)
    return model, opt, sched


def _step(model, opt, sched, gen):
    x = torch.randn(5, 4, generator=gen)
    loss = torch.nn.functional.dropout(model(x), 0.5).pow(2).mean()  # dropout draws from the global RNG
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_resume_reproduces_uninterrupted_training(tmp_path):
    model, opt, sched = _setup()
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        _step(model, opt, sched, gen)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt, sched = _setup()
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        _step(model, opt, sched, gen)
    save_training_state(tmp_path / "ckpt", model=model, optimizer=opt, scheduler=sched,
                        state={"step": 4}, generators={"data": gen})
    assert has_checkpoint(tmp_path / "ckpt")
    for _ in range(3):  # work after the checkpoint that the "crash" loses
        _step(model, opt, sched, gen)

    model2, opt2, sched2 = _setup(seed=123)  # a fresh process: different init
    gen2 = torch.Generator()
    state = load_training_state(tmp_path / "ckpt", model=model2, optimizer=opt2, scheduler=sched2,
                                generators={"data": gen2})
    assert state == {"step": 4}
    for _ in range(6):
        _step(model2, opt2, sched2, gen2)
    for k, v in model2.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=0, atol=0)


def test_mismatched_checkpoint_names_keys(tmp_path):
    model, opt, sched = _setup()
    save_training_state(tmp_path / "c", model=model, optimizer=opt, scheduler=sched, state={})
    other = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 2))
    with pytest.raises(CheckpointError, match=r"0\.weight: checkpoint \(8, 4\) vs model \(16, 4\)"):
        load_training_state(tmp_path / "c", model=other)


def test_incomplete_checkpoint_is_refused(tmp_path):
    model, opt, sched = _setup()
    save_training_state(tmp_path / "c", model=model, optimizer=opt, scheduler=sched, state={})
    (tmp_path / "c" / "optimizer.safetensors").unlink()
    assert not has_checkpoint(tmp_path / "c")
    with pytest.raises(CheckpointError, match="not a complete training checkpoint"):
        load_training_state(tmp_path / "c", model=model)


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    model, opt, sched = _setup()
    for step in range(3):
        save_training_state(tmp_path / "c", model=model, optimizer=opt, scheduler=sched, state={"step": step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert json.loads((tmp_path / "c" / "state.json").read_text())["state"]["step"] == 2


def test_write_json_atomic_writes_null_for_nan(tmp_path):
    path = write_json_atomic(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}
