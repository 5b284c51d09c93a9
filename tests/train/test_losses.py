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
