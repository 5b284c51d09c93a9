"""Fixtures for the data-layer tests: real recordings from the repo's sibling ``../shared/data``."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def eegmat_subset(tmp_path_factory, eegmat_dir) -> Path:
    """A source folder with Subject00 (train) and Subject28 (val), both runs (symlinks to the real files)."""
    d = tmp_path_factory.mktemp("eegmat_src")
    for s in ("00", "28"):
        for r in ("1", "2"):
            (d / f"Subject{s}_{r}.edf").symlink_to(eegmat_dir / f"Subject{s}_{r}.edf")
    return d


@pytest.fixture(scope="session")
def eegmat_store(tmp_path_factory, eegmat_subset) -> Path:
    from neuript.data.recipes import get_recipe
    from neuript.data.prepare import prepare_store

    out = tmp_path_factory.mktemp("stores") / "eegmat_tcp"
    with pytest.warns(UserWarning, match="test"):
        prepare_store(get_recipe("eegmat"), source=eegmat_subset, out=out, n_jobs=2, progress=False)
    return out


@pytest.fixture(scope="session")
def eegmat_car_store(tmp_path_factory, eegmat_subset) -> Path:
    from neuript.data.recipes import get_recipe
    from neuript.data.prepare import prepare_store

    out = tmp_path_factory.mktemp("stores") / "eegmat_car"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat", montage="average", subjects="0"), source=eegmat_subset, out=out,
                      n_jobs=1, progress=False, dtype="float32")
    return out


def copy_file(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
