"""The bundled sample: size budget, attribution, recipe splits, and fidelity to the original recordings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neuript.data.io import read_raw
from neuript.data.preprocess import preprocess_raw
from neuript.data.recipes import get_recipe
from neuript.data.sample import SAMPLES, sample_path
from neuript.data.prepare import prepare_store
from neuript.data.store import WindowStore


def test_sample_budget_and_attribution():
    root = sample_path("eegmat").parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= 25e6, f"sample is {total / 1e6:.1f} MB, budget 25 MB"
    text = (root / "README.md").read_text()
    assert "ODC-By" in text and "Zyma" in text and "Schalk" in text and "Goldberger" in text
    with pytest.raises(KeyError):
        sample_path("nope")
    assert set(SAMPLES) == {"eegmat", "eegmmidb"}


def test_sample_eegmat_splits_nonempty():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        recs = get_recipe("eegmat").recordings(sample_path("eegmat"))
    splits = {r.split for r in recs}
    assert {"train", "val"} <= splits
    assert {r.label for r in recs} == {0, 1}
    assert len(get_recipe("eegmmidb").recordings(sample_path("eegmmidb"))) == 4


def test_sample_matches_original(shared_data):
    cfg = get_recipe("eegmat").config()
    a, names, pos, _ = preprocess_raw(read_raw(sample_path("eegmat") / "Subject28_2.edf"), cfg)
    b, names_b, pos_b, _ = preprocess_raw(read_raw(shared_data / "eegmat" / "Subject28_2.edf"), cfg)
    assert names == names_b and a.shape == b.shape
    np.testing.assert_allclose(pos, pos_b)
    core = slice(5 * 64, -5 * 64)  # away from filter edges
    err = np.abs(a[:, core] - b[:, core]).max()
    assert err < 0.02 * np.abs(b[:, core]).max(), f"sample deviates from the original by {err:.3f} µV"


def test_prepare_sample_quickly(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), source=sample_path("eegmat"), out=tmp_path / "s", n_jobs=2,
                      progress=False)
    w = WindowStore.open(tmp_path / "s").windows
    assert (w["split"] == "train").sum() > 300 and (w["split"] == "val").sum() > 80
