"""Vectorised MoE dispatch equals a naive per-token reference (both routing modes, capacity dropping)."""

import math

import pytest
import torch

from neuript.model.moe import MixtureOfExperts


def naive(moe: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])
    n, e, k = flat.shape[0], moe.n_experts, moe.top_k
    capacity = n // e if moe.routing == "official" else math.inf
    used = [0] * e
    rows = []
    for t in range(n):  # deliberately a loop over tokens, in token order
        tok = flat[t : t + 1]
        logits = moe.gate(tok)[0]
        probs = logits.softmax(-1)
        idx = logits.topk(k).indices
        if moe.routing == "paper":
            w = logits[idx].softmax(-1)
        else:
            w = probs[idx]
        y = moe.shared_expert(tok)[0]
        for j, ex in enumerate(idx.tolist()):
            if used[ex] < capacity:
                used[ex] += 1
                y = y + w[j] * moe.experts[ex](tok)[0]
        rows.append(y)
    return torch.stack(rows).reshape(x.shape)


@pytest.mark.parametrize("routing", ["paper", "official"])
@pytest.mark.parametrize("n_experts", [1, 2, 4, 6])
def test_dispatch_matches_naive(routing, n_experts):
    torch.manual_seed(n_experts)
    moe = MixtureOfExperts(d_model=8, n_experts=n_experts, expert_hidden=6, shared_hidden=5, routing=routing).eval()
    x = torch.randn(3, 7, 8)
    with torch.no_grad():
        y, aux = moe(x)
        torch.testing.assert_close(y, naive(moe, x), atol=1e-5, rtol=1e-5)
    assert aux.ndim == 0 and torch.isfinite(aux)


def test_official_capacity_actually_drops():
    torch.manual_seed(0)
    moe = MixtureOfExperts(d_model=8, n_experts=4, expert_hidden=6, shared_hidden=5, routing="official").eval()
    x = torch.randn(40, 8)
    with torch.no_grad():
        y_off, _ = moe(x)
        moe.routing = "paper"
        y_pap, _ = moe(x)
    assert not torch.allclose(y_off, y_pap)


def test_gate_noise_only_in_training_and_gradients_flow():
    torch.manual_seed(0)
    moe = MixtureOfExperts(d_model=8, n_experts=4, expert_hidden=6, shared_hidden=5, gate_noise=0.5)
    x = torch.randn(10, 8, requires_grad=True)
    moe.eval()
    a, _ = moe(x)
    b, _ = moe(x)
    assert torch.equal(a, b)
    moe.train()
    y, aux = moe(x)
    (y.sum() + aux).backward()
    assert moe.gate.weight.grad is not None and x.grad is not None


@pytest.mark.parametrize("routing", ["paper", "official"])
def test_an_expert_without_tokens_gets_a_zero_gradient(routing):
    # DistributedDataParallel needs every parameter in every backward; a small micro-batch can leave an expert
    # without tokens. Steer all tokens away from expert 3: its logit is far below the others for positive inputs.
    torch.manual_seed(0)
    moe = MixtureOfExperts(d_model=4, n_experts=4, expert_hidden=3, shared_hidden=3, routing=routing,
                           gate_noise=0.0).train()
    with torch.no_grad():
        moe.gate.weight.zero_()
        moe.gate.bias.copy_(torch.tensor([0.0, 0.1, 0.2, -50.0]))
    x = torch.rand(2, 5, 4) + 0.5
    _, top_idx, _ = moe.route(x.reshape(-1, 4))
    assert not (top_idx == 3).any(), "the test must leave expert 3 without tokens"
    y, aux = moe(x)
    (y.sum() + aux).backward()
    for name, p in moe.experts[3].named_parameters():
        assert p.grad is not None, f"expert 3 {name} has no gradient"
        assert torch.count_nonzero(p.grad) == 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in moe.experts[2].parameters())  # routed to
