"""Public API of the model layer (docs/INTERFACES.md, model section)."""

import pytest
import torch

from neuript.model import NeurIPT, NeurIPTPretrain, neuript_tiny

TINY = dict(d_model=32, n_heads=4, d_ff=32, expert_hidden=16, shared_hidden=32)


def _pos(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, 3, generator=g) * 0.05


@pytest.mark.parametrize("n_chans,n_times", [(2, 64), (19, 256), (20, 320), (64, 64)])
def test_forward_shapes_any_montage(n_chans, n_times):
    m = NeurIPT(n_outputs=3, n_chans=n_chans, positions=_pos(n_chans), groups="mean", **TINY).eval()
    x = torch.randn(2, n_chans, n_times)
    logits, feats = m(x, return_features=True)
    assert logits.shape == (2, 3)
    assert len(feats) == 7
    assert [f.shape[2] for f in feats] == [n_times] + m.encoder.scale_lengths(n_times)
    assert all(f.shape[:2] == (2, n_chans) for f in feats)


def test_long_window():
    m = NeurIPT(n_outputs=5, n_chans=2, positions=_pos(2), groups=[[0], [1]], **TINY).eval()
    assert m(torch.randn(1, 2, 1920)).shape == (1, 5)


def test_backward_aux_checkpointing_and_bf16():
    x = torch.randn(2, 5, 100)
    m = NeurIPT(n_outputs=2, n_chans=5, positions=_pos(5), groups="mean", dropout=0.0, gate_noise=0.0, **TINY)
    m.train()
    out_a = m(x).sum() + m.aux_loss
    assert m.aux_loss.ndim == 0 and m.aux_loss.item() > 0
    out_a.backward()
    ga = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert ga["encoder.blocks.5.tsa.ffn2.gate.weight"].abs().sum() > 0  # aux + routing gradients reach the gate
    m.zero_grad()
    m.encoder.grad_checkpointing = True
    out_b = m(x).sum() + m.aux_loss
    out_b.backward()
    gb = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    torch.testing.assert_close(out_a, out_b)
    assert ga.keys() == gb.keys()
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-5, rtol=1e-4, msg=n)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


def test_reset_head_and_call_time_montage():
    m = NeurIPT(n_outputs=2, n_chans=6, positions=_pos(6), groups=[[0, 1, 2], [3, 4, 5]], **TINY).eval()
    m.reset_head(4)
    assert m.final_layer.linear.out_features == 4
    assert m(torch.randn(1, 6, 64)).shape == (1, 4)
    # another montage at call time with the same number of groups
    y = m(torch.randn(1, 3, 64), positions=_pos(3, 1), groups=[[0], [1, 2]])
    assert y.shape == (1, 4)
    with pytest.raises(ValueError, match="groups"):
        m(torch.randn(1, 3, 64), positions=_pos(3, 1), groups=[[0], [1], [2]])


def test_pretrain_and_transfer():
    p = neuript_tiny(pretrain=True, positions=_pos(4))
    x = torch.randn(2, 4, 64)
    out = p(x)
    assert out["pred"].shape == x.shape and out["mask"].shape == x.shape and out["mask"].dtype == torch.bool
    (out["recon_loss"] + 0.8 * out["aux_loss"]).backward()
    m = NeurIPT.from_pretrain(p, n_outputs=2, groups="mean")
    for k, v in p.encoder.state_dict().items():
        assert torch.equal(v, m.encoder.state_dict()[k])
    assert isinstance(p, NeurIPTPretrain)
