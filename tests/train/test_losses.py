import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuript.train.finetune import BalancedLoss


def test_binary_shift_is_log_prior_odds():
    loss = BalancedLoss(np.array([0.75, 0.25]), tau=1.0, label_smoothing=0.0, binary=True)
    assert loss.shift.item() == pytest.approx(math.log(0.25 / 0.75))
    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    y = torch.tensor([1, 0, 1])
    expected = F.binary_cross_entropy_with_logits(logits[:, 0] + math.log(1 / 3), y.float())
    torch.testing.assert_close(loss(logits, y), expected)


def test_balanced_prior_reduces_to_plain_losses():
    logits = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    loss = BalancedLoss(np.ones(3) / 3, tau=1.0, label_smoothing=0.0, binary=False)
    torch.testing.assert_close(loss(logits, y), F.cross_entropy(logits, y))


def test_multiclass_adjustment_and_smoothing():
    prior = np.array([0.5, 0.3, 0.2])
    logits = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 0, 1])
    loss = BalancedLoss(prior, tau=0.5, label_smoothing=0.1, binary=False)
    expected = F.cross_entropy(logits + 0.5 * torch.log(torch.tensor(prior, dtype=torch.float32)), y,
                               label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, y), expected)


def test_binary_label_smoothing_targets():
    loss = BalancedLoss(np.array([0.5, 0.5]), label_smoothing=0.2, binary=True)
    logits = torch.zeros(2, 1)
    y = torch.tensor([0, 1])
    # targets 0.1 / 0.9 at logit 0 give log(2) each
    assert loss(logits, y).item() == pytest.approx(math.log(2))


def test_reference_multiclass_loss_against_a_hand_computation():
    """Spec §5: C logits, each shifted by log(pi_c / (1 - pi_c)); C * mean over (batch, class) of BCE with the
    smoothed one-hot target."""
    prior = np.array([0.5, 0.3, 0.2])
    logits = [[0.2, -1.0, 0.5], [1.5, 0.0, -0.3]]
    y = [2, 0]
    eps = 0.1
    total = 0.0
    for row, label in zip(logits, y):
        for c, z in enumerate(row):
            z = z + math.log(prior[c] / (1 - prior[c]))
            t = (1.0 if c == label else 0.0) * (1 - eps) + eps / 2
            p = 1 / (1 + math.exp(-z))
            total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    expected = 3 * total / (2 * 3)
    loss = BalancedLoss(prior, tau=1.0, label_smoothing=eps, binary=False, multiclass="sigmoid")
    assert loss(torch.tensor(logits), torch.tensor(y)).item() == pytest.approx(expected, rel=1e-6)
    # and it differs from the softmax form, which stays available
    soft = BalancedLoss(prior, tau=1.0, label_smoothing=eps, binary=False, multiclass="softmax")
    assert soft(torch.tensor(logits), torch.tensor(y)).item() != pytest.approx(expected, rel=1e-3)


def test_finetune_uses_the_reference_loss_for_multiclass_by_default():
    from neuript.train.finetune import LOSSES, FinetuneConfig

    assert FinetuneConfig().loss == "balanced" and LOSSES["balanced"] == (True, "sigmoid")
    assert LOSSES["balanced_softmax"] == (True, "softmax") and LOSSES["ce"] == (False, "softmax")
