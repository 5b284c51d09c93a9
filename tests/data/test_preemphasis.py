"""Pre-emphasis of the input: the filter, its gain, and the datasets that apply it."""

from __future__ import annotations

import numpy as np
import pytest

from neuript.data.loader import WindowDataset
from neuript.data.preprocess import alaw, preemphasis, preemphasis_gain


def test_preemphasis_is_the_filter_it_names():
    x = np.array([[1.0, 3.0, 6.0, 10.0]])
    assert np.allclose(preemphasis(x, 1.0), [[0.0, 2.0, 3.0, 4.0]])  # the first difference, x[-1] = x[0]
    assert np.allclose(preemphasis(x, 0.5, 2.0), 2 * np.array([[0.5, 2.5, 4.5, 7.0]]))
    assert np.allclose(preemphasis(x, 0.0), x)


def test_gain_restores_the_standard_deviation_of_a_one_over_f_signal():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((8, 3, 512)), axis=-1)  # brown noise: power falls with frequency
    g = preemphasis_gain(x, 0.9)
    assert g > 1.5  # the filter removed most of the (low-frequency) power
    assert np.isclose(preemphasis(x, 0.9, g).std(), x.std(), rtol=1e-6)
    spec_raw = np.abs(np.fft.rfft(x, axis=-1)).mean((0, 1))
    spec_pe = np.abs(np.fft.rfft(preemphasis(x, 0.9, g), axis=-1)).mean((0, 1))
    assert spec_pe[200] / spec_pe[2] > 10 * spec_raw[200] / spec_raw[2]  # tilted toward high frequencies


def test_dataset_applies_preemphasis_before_alaw_with_the_given_gain(stores):
    store = stores["eegmat"]
    raw = WindowDataset([store], split="val", transform=None)
    train = WindowDataset([store], split="train", preemphasis=0.9)
    assert train.preemphasis_gain > 1.0
    val = WindowDataset([store], split="val", preemphasis=0.9, preemphasis_gain=train.preemphasis_gain)
    x_uv = raw[3]["x"].numpy()
    want = alaw(preemphasis(x_uv, 0.9, train.preemphasis_gain))
    assert np.allclose(val[3]["x"].numpy(), want, atol=1e-6)
    # the gain of a dataset is its own windows' (here the validation subject's), unless given
    own = WindowDataset([store], split="val", preemphasis=0.9)
    assert own.preemphasis_gain != pytest.approx(train.preemphasis_gain, rel=1e-6)
    assert WindowDataset([store], split="val").preemphasis == 0.0


def test_out_of_range_coefficient_is_refused(stores):
    with pytest.raises(ValueError, match="preemphasis must lie in"):
        WindowDataset([stores["eegmat"]], split="val", preemphasis=1.5)
