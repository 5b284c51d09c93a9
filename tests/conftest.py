"""Fixtures shared by every test package: where the real recordings and the reference files are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Training with activation checkpointing fixes glibc's mmap threshold for the rest of the process (memory over
# speed, neuript.train.memory.release_freed_activations); the test process keeps glibc's default so that later
# tests are not slowed down. tests/train/test_memory_estimate.py checks the switch in a subprocess.
os.environ.setdefault("NEURIPT_MALLOC", "default")


def _find(env: str, *parts: str) -> Path:
    cands = []
    if os.environ.get(env):
        cands.append(Path(os.environ[env]))
    cands.append(REPO.parent / "shared" / Path(*parts))
    for c in cands:
        if c.is_dir():
            return c
    pytest.fail(f"test files not found in {[str(c) for c in cands]}: they live next to the repository "
                f"(../shared/{'/'.join(parts)}); or set {env}.", pytrace=False)


def shared_data_dir() -> Path:
    """``<repo>/../shared/data`` or ``$NEURIPT_SHARED_DATA``; fails (never skips) when neither exists."""
    return _find("NEURIPT_SHARED_DATA", "data")


def shared_spec_dir() -> Path:
    """``<repo>/../shared/spec`` or ``$NEURIPT_SHARED_SPEC``; fails (never skips) when neither exists."""
    return _find("NEURIPT_SHARED_SPEC", "spec")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def shared_spec() -> Path:
    return shared_spec_dir()


@pytest.fixture(scope="session")
def eegmat_dir(shared_data) -> Path:
    return shared_data / "eegmat"


# ---------------------------------------------------------------------------------------------- workflow fixtures
# Small real-data stores, a tiny model, and a pretraining + fine-tuning run shared by the train and inference tests.
import warnings  # noqa: E402

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
    from neuript.data.prepare import prepare_store

    root = tmp_path_factory.mktemp("train_stores")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the absent test subjects
        prepare_store(get_recipe("eegmat", subjects="0,1,2,28"), source=shared_data / "eegmat",
                      out=root / "eegmat", n_jobs=2, progress=False)
        prepare_store(get_recipe("eegmmidb", subjects="1", runs="1,4", reject_uv=None), source=shared_data / "eegmmidb",
                      out=root / "eegmmidb", n_jobs=2, progress=False)
    return {"eegmat": root / "eegmat", "eegmmidb": root / "eegmmidb"}


@pytest.fixture(scope="session")
def pretrained(stores, tiny_overrides, tmp_path_factory) -> Path:
    from neuript.train.pretrain import PretrainConfig, pretrain

    out = tmp_path_factory.mktemp("pt") / "run"
    return pretrain(PretrainConfig(stores=[str(stores["eegmmidb"])], out=str(out), preset="neuript_tiny",
                                   model_overrides=tiny_overrides, epochs=1, max_steps=3, batch_size=8,
                                   precision="bf16", plot=True, device="cpu"))


@pytest.fixture(scope="session")
def finetuned(stores, pretrained, tmp_path_factory) -> Path:
    from neuript.train.finetune import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("ft") / "run"
    return finetune(FinetuneConfig(stores=[str(stores["eegmat"])], out=str(out), pretrained=str(pretrained),
                                   epochs=2, batch_size=16, lr=1e-3, seeds=[0, 1], precision="bf16",
                                   max_train_batches=4, device="cpu"))


