import os
from pathlib import Path

import pytest


def _spec_dir() -> Path:
    env = os.environ.get("NEURIPT_SHARED_SPEC")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    return root.parent / "shared" / "spec"


@pytest.fixture(scope="session")
def official_dir() -> Path:
    d = _spec_dir() / "official_reference"
    needed = ["config.json", "stage1_weights.safetensors", "stage1_io.safetensors",
              "stage2_weights.safetensors", "stage2_io.safetensors"]
    missing = [n for n in needed if not (d / n).is_file()]
    if missing:
        pytest.fail(
            f"reference fixtures not found in {d} (missing {missing}); put the shared spec next to the repo "
            "(../shared/spec) or set NEURIPT_SHARED_SPEC=/path/to/spec"
        )
    return d
