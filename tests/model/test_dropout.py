"""The fast CPU dropout: rate, scaling, gradient, reproducibility."""

import pytest
import torch

from neuript.model.dropout import Dropout, drop_mask, dropout


def test_drop_rate_and_scaling():
    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    y = Dropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.002)  # 400k draws: std 0.0005
    kept = y[y != 0]
    p_eff = round(0.1 * 2**16) / 2**16
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p_eff)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased in expectation


def test_mask_lanes_are_independent_and_uniform():
    torch.manual_seed(0)
    for p in (0.02, 0.5, 0.9):
        mask, p_eff = drop_mask((8, 50_001), p)  # odd count: the last 64-bit word is only partly used
        assert mask.shape == (8, 50_001) and mask.dtype == torch.bool
        assert p_eff == pytest.approx(p, abs=2**-16)
        assert mask.float().mean().item() == pytest.approx(p, abs=0.005)
        # every 16-bit lane of the random words (element index mod 4) drops at the same rate
        lanes = mask.reshape(-1)[: 8 * 50_000].reshape(-1, 4).float().mean(0)
        assert (lanes - p).abs().max().item() < 0.01


def test_gradient_is_mask_times_scale():
    torch.manual_seed(3)
    x = torch.randn(64, 128, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    y.backward(torch.ones_like(y))
    kept = y.detach() != 0
    scale = 1 / (1 - round(0.3 * 2**16) / 2**16)
    torch.testing.assert_close(x.grad, kept.float() * scale)
    torch.testing.assert_close(y.detach(), x.detach() * kept * scale)


def test_seeded_eval_and_bf16():
    x = torch.randn(32, 32)
    torch.manual_seed(7)
    a = dropout(x, 0.2)
    torch.manual_seed(7)
    b = dropout(x, 0.2)
    torch.testing.assert_close(a, b)
    assert dropout(x, 0.2, training=False) is x
    assert Dropout(0.2).eval()(x) is x
    assert dropout(x.bfloat16(), 0.2).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        Dropout(1.0)
