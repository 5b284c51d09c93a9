"""Fixtures shared by every test package: where the real recordings and the reference files are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
