"""The CPU speed / memory changes (issue 13) keep the model's outputs and gradients.

The fixtures in ``tests/fixtures/perf/`` were written by the model code *before* those changes (commit 8150c8a,
``neuript_tiny`` with dropout and gate noise off, 2 windows x 6 channels x 64 samples): weights, inputs, eval and
train outputs, MoE auxiliary loss and every parameter gradient, for both modes. The current code, loading the
same weights, must reproduce them to fp32 rounding.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neuript.model.presets import build

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "perf"
C = 6
ATOL, RTOL = 1e-5, 1e-4


def _pos(c):
    g = torch.Generator().manual_seed(c)
    return torch.randn(c, 3, generator=g) * 0.05


def _load(model, t):
    model.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("w.")})


def _check_grads(model, t):
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == {k[5:] for k in t if k.startswith("grad.")}
    for n, g in grads.items():
        torch.testing.assert_close(g, t["grad." + n], atol=ATOL, rtol=RTOL, msg=n)


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_classifier_matches_pre_optimisation_outputs(mode):
    t = load_file(str(FIXTURES / f"tiny_classifier_{mode}.safetensors"))
    clf = build("tiny", n_outputs=2, positions=_pos(C), groups="functional", mode=mode, dropout=0.0, gate_noise=0.0)
    _load(clf, t)
    clf.eval()
    with torch.no_grad():
        logits, feats = clf(t["x"], return_features=True)
    torch.testing.assert_close(logits, t["logits_eval"], atol=ATOL, rtol=RTOL)
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, t[f"feat{i}"], atol=ATOL, rtol=RTOL)
    clf.train()
    logits = clf(t["x"])
    loss = torch.nn.functional.cross_entropy(logits, t["y"]) + 0.8 * clf.aux_loss
    loss.backward()
    torch.testing.assert_close(logits, t["logits_train"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(clf.aux_loss, t["aux_train"], atol=ATOL, rtol=RTOL)
    _check_grads(clf, t)


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("mode", ["paper", "official"])
def test_pretrain_matches_pre_optimisation_outputs(mode, checkpointing):
    t = load_file(str(FIXTURES / f"tiny_pretrain_{mode}.safetensors"))
    pre = build("tiny", pretrain=True, positions=_pos(C), mode=mode, dropout=0.0, gate_noise=0.0)
    _load(pre, t)
    pre.set_grad_checkpointing(checkpointing)
    pre.decoder.checkpoint_windows = 1  # 2 windows: two recomputed chunks
    pre.eval()
    with torch.no_grad():
        out = pre(t["x"], mask=t["mask"])
    torch.testing.assert_close(out["pred"], t["pred_eval"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out["recon_loss"], t["recon_eval"], atol=ATOL, rtol=RTOL)
    pre.train()
    torch.manual_seed(4)  # the BERT replacement draw of paper mode, as when the fixture was written
    out = pre(t["x"], mask=t["mask"])
    (out["recon_loss"] + 0.8 * out["aux_loss"]).backward()
    torch.testing.assert_close(out["pred"], t["pred_train"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out["recon_loss"], t["recon_train"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out["aux_loss"], t["aux_train"], atol=ATOL, rtol=RTOL)
    _check_grads(pre, t)


def test_dropout_values_unchanged():
    """Multiplying by the keep mask gives the values masked_fill gave (same random draws)."""
    from neuript.model.dropout import drop_mask, dropout

    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(5)
    y = dropout(x, 0.1)
    y.backward(torch.ones_like(y))
    torch.manual_seed(5)
    drop, p_eff = drop_mask(x.shape, 0.1)
    ref = x.detach().masked_fill(drop, 0.0) / (1 - p_eff)
    torch.testing.assert_close(y, ref, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(x.grad, (~drop).float() / (1 - p_eff), atol=1e-7, rtol=1e-6)
