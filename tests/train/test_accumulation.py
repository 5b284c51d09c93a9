"""Gradient accumulation over micro-batches gives the gradients of the full batch."""

import pytest
import torch

from neuript.model.presets import build
from neuript.train.finetune import BalancedLoss, accumulate_gradients


def _grads(micro: int, *, aux_weight: float) -> tuple[list[torch.Tensor], float]:
    torch.manual_seed(0)
    model = build("tiny", n_outputs=3, positions=torch.randn(6, 3) * 0.05, groups="mean", dropout=0.0,
                  gate_noise=0.0, n_times=64).train()
    x = torch.randn(6, 6, 64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = accumulate_gradients(model, BalancedLoss([0.5, 0.3, 0.2], binary=False), x, y, micro_batch_size=micro,
                                aux_weight=aux_weight, device=torch.device("cpu"), precision="fp32")
    return [p.grad.clone() for p in model.parameters() if p.grad is not None], loss


@pytest.mark.parametrize("micro", [1, 2, 4])
def test_micro_batches_match_the_full_batch(micro):
    full, full_loss = _grads(6, aux_weight=0.0)
    acc, acc_loss = _grads(micro, aux_weight=0.0)
    assert len(full) == len(acc) > 0
    assert acc_loss == pytest.approx(full_loss, rel=1e-5)
    for a, b in zip(full, acc):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_moe_balancing_loss_is_per_micro_batch():
    # documented difference: the auxiliary loss is a nonlinear function of the batch's routing statistics
    full, _ = _grads(6, aux_weight=0.8)
    acc, _ = _grads(2, aux_weight=0.8)
    assert any(not torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(full, acc))


def _pretrain_grads(micro):
    from neuript.train.pretrain import draw_mask
    from neuript.train.common import DistContext
    from neuript.train.pretrain import PretrainConfig, _accumulate

    torch.manual_seed(0)
    pos = torch.randn(6, 3) * 0.05
    model = build("tiny", pretrain=True, positions=pos, dropout=0.0, gate_noise=0.0).train()
    x = torch.randn(4, 6, 64, generator=torch.Generator().manual_seed(1))
    mask = draw_mask(x, masking="aamp", ratios=(0.35,), generator=torch.Generator().manual_seed(2))
    cfg = PretrainConfig(micro_batch_size=micro, aux_weight=0.0, precision="fp32")
    loss, parts = _accumulate(model, x, pos, mask, cfg, DistContext())
    return [p.grad.clone() for p in model.parameters() if p.grad is not None], loss, parts


@pytest.mark.parametrize("micro", [1, 3])
def test_pretraining_micro_batches_match_the_full_batch(micro):
    # AAMP masks the same number of points in every window, so the per-window mean losses weight equally
    full, full_loss, full_parts = _pretrain_grads(None)
    acc, acc_loss, acc_parts = _pretrain_grads(micro)
    assert len(full) == len(acc) > 0
    assert float(acc_loss) == pytest.approx(float(full_loss), rel=1e-5)
    assert float(acc_parts["recon_loss"]) == pytest.approx(float(full_parts["recon_loss"]), rel=1e-5)
    for a, b in zip(full, acc):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
