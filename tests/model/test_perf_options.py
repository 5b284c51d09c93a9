"""Speed / memory options of the model layer: attention-weight dropout, fused projections, fp32 attention under
bf16 autocast, activation checkpointing of encoder and decoder."""

import math

import pytest
import torch

from neuript.model import NeurIPT, NeurIPTPretrain
from neuript.model.attention import MultiHeadAttention

TINY = dict(d_model=32, n_heads=2, d_ff=32, expert_hidden=16, shared_hidden=32)


def _pos(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, 3, generator=g) * 0.05


def _reference_mha(mha, x, context=None, key_keep=None):
    """Reference-style attention: three projections, materialised scores, explicit softmax."""
    context = x if context is None else context
    h = mha.n_heads
    n, lq, d = x.shape
    e = d // h
    q = mha.q_proj(x).view(n, lq, h, e).transpose(1, 2)
    k = mha.k_proj(context).view(n, -1, h, e).transpose(1, 2)
    v = mha.v_proj(context).view(n, -1, h, e).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(e)
    if key_keep is not None:
        scores = scores.masked_fill(~key_keep[:, None, None, :], float("-inf"))
    out = scores.softmax(-1) @ v
    return mha.out_proj(out.transpose(1, 2).reshape(n, lq, d))


def test_attn_dropout_option_and_default():
    m = NeurIPTPretrain(positions=_pos(3), **TINY)
    assert m.encoder.cfg.attn_dropout == 0.0 and m.encoder.cfg.dropout == 0.1
    mhas = [mod for mod in m.modules() if isinstance(mod, MultiHeadAttention)]
    assert mhas and all(a.dropout == 0.0 for a in mhas)
    m2 = NeurIPTPretrain(positions=_pos(3), attn_dropout=0.1, **TINY)
    assert all(a.dropout == 0.1 for a in m2.modules() if isinstance(a, MultiHeadAttention))
    assert m2.config["attn_dropout"] == 0.1
    # eval outputs do not depend on it
    c = NeurIPT(n_outputs=2, positions=_pos(3), groups="mean", **TINY).eval()
    c2 = NeurIPT(n_outputs=2, positions=_pos(3), groups="mean", attn_dropout=0.1, **TINY).eval()
    c2.load_state_dict(c.state_dict())
    x = torch.randn(2, 3, 40)
    torch.testing.assert_close(c(x), c2(x), rtol=0, atol=0)
    # in training, attention-weight dropout changes the output (it is really applied)
    c2.train()
    torch.manual_seed(0)
    a = c2.encoder.blocks[0].tsa.time_attn(torch.randn(4, 16, 32))
    c2.encoder.blocks[0].tsa.time_attn.dropout = 0.0
    torch.manual_seed(0)
    b = c2.encoder.blocks[0].tsa.time_attn(torch.randn(4, 16, 32))
    assert not torch.allclose(a, b)


def test_attn_dropout_checkpoint_round_trip(tmp_path):
    m = NeurIPT(n_outputs=2, positions=_pos(3), groups="mean", attn_dropout=0.1, **TINY)
    m.save_pretrained(tmp_path)
    assert NeurIPT.from_pretrained(tmp_path).encoder.cfg.attn_dropout == 0.1


@pytest.mark.parametrize("masked", [False, True])
def test_fused_projection_attention_matches_reference(masked):
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=32, n_heads=2).eval()
    x = torch.randn(5, 11, 32)
    mask = torch.rand(5, 11) < 0.4 if masked else None
    if masked:
        mask[0] = True  # an all-masked sequence attends to all keys
    keep = None if mask is None else (~mask | mask.all(-1, keepdim=True))
    torch.testing.assert_close(mha(x, mask=mask), _reference_mha(mha, x, key_keep=keep), atol=1e-5, rtol=1e-5)
    ctx = torch.randn(5, 7, 32)
    torch.testing.assert_close(mha(x, ctx), _reference_mha(mha, x, ctx), atol=1e-5, rtol=1e-5)


def test_bf16_autocast_attention_runs_in_fp32_and_is_close():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=32, n_heads=2).eval()
    x = torch.randn(3, 9, 32)
    ref = mha(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mha(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=5e-2, rtol=5e-2)


def _saved_bytes(fn):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


def test_pretrain_checkpointing_same_result_less_saved_memory():
    x = torch.randn(2, 4, 64)
    mask = torch.rand(2, 4, 64) < 0.3
    m = NeurIPTPretrain(positions=_pos(4), **TINY).train()  # dropout 0.1: checkpointing must replay the RNG
    torch.manual_seed(1)
    plain, out_a = _saved_bytes(lambda: m(x, mask=mask))
    (out_a["recon_loss"] + 0.8 * out_a["aux_loss"]).backward()
    ga = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m.set_grad_checkpointing(True)  # encoder and decoder
    torch.manual_seed(1)
    ckpt, out_b = _saved_bytes(lambda: m(x, mask=mask))
    (out_b["recon_loss"] + 0.8 * out_b["aux_loss"]).backward()
    gb = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    torch.testing.assert_close((out_a["recon_loss"] + 0.8 * out_a["aux_loss"]), (out_b["recon_loss"] + 0.8 * out_b["aux_loss"]))
    assert ga.keys() == gb.keys()
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-5, rtol=1e-4, msg=n)
    assert ckpt < 0.3 * plain, (ckpt, plain)


def test_pretrain_bf16_autocast_backward():
    m = NeurIPTPretrain(positions=_pos(4), **TINY).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.randn(2, 4, 64))
    assert torch.isfinite((out["recon_loss"] + 0.8 * out["aux_loss"]))
    (out["recon_loss"] + 0.8 * out["aux_loss"]).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_malloc_mmap_threshold_helper():
    import sys

    from benchmarks.memory import set_malloc_mmap_threshold

    ok = set_malloc_mmap_threshold(1 << 20)  # harmless for the test process
    assert isinstance(ok, bool)
    if sys.platform.startswith("linux"):
        assert ok


@pytest.mark.parametrize("length,head_dim,dtype", [(20, 16, torch.float32), (20, 16, torch.bfloat16),
                                                   (64, 96, torch.bfloat16), (256, 64, torch.bfloat16),
                                                   (256, 64, torch.float32)])
def test_cpu_kernel_choice_matches_explicit_attention(length, head_dim, dtype):
    from neuript.model.attention import _cpu_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, length, head_dim, generator=g).to(dtype) for _ in range(3))
    keep = torch.rand(3, length, generator=g) > 0.3
    keep[:, 0] = True
    mask = keep[:, None, None, :]
    scores = (q.double() @ k.double().transpose(-1, -2)) / head_dim**0.5
    ref = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v.double()
    out = _cpu_attention(q, k, v, mask, 0.0)
    fp32 = dtype == torch.float32 or not (length >= 256 and head_dim >= 64)  # the kernel choice upcasts these
    assert out.dtype == (torch.float32 if fp32 else dtype)
    tol = 1e-5 if fp32 else 2e-2
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
    # under bf16 autocast the fp32 choices must stay fp32 (autocast would otherwise cast the inputs down)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _cpu_attention(q, k, v, mask, 0.0)
    assert out.dtype == (torch.float32 if fp32 else dtype)
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
