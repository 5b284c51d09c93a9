"""Small real-data stores and a tiny model configuration shared by the workflow tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

# A model small enough for CI on 2 cores (every block kind still present: merges, dense and MoE blocks).
TINY = {"d_model": 16, "n_heads": 2, "d_ff": 16, "expert_hidden": 8, "shared_hidden": 16,
        "merge_factors": [1, 4, 1, 2], "n_experts": [0, 0, 2, 4]}


@pytest.fixture(scope="session")
def tiny_overrides() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def stores(tmp_path_factory, shared_data) -> dict[str, Path]:
    """EEGMAT subjects 00-02 (train) + 28 (val), and two EEGMMIDB runs, prepared with the real recipes."""
    from neuript.data.recipes import get_recipe
    from neuript.data.store import prepare_store

    root = tmp_path_factory.mktemp("train_stores")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the absent test subjects
        prepare_store(get_recipe("eegmat", subjects="0,1,2,28"), source=shared_data / "eegmat",
                      out=root / "eegmat", n_jobs=2, progress=False)
        prepare_store(get_recipe("eegmmidb", subjects="1", runs="1,4", reject_uv=None), source=shared_data / "eegmmidb",
                      out=root / "eegmmidb", n_jobs=2, progress=False)
    return {"eegmat": root / "eegmat", "eegmmidb": root / "eegmmidb"}
