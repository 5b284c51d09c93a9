from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def official_dir(shared_spec) -> Path:
    d = shared_spec / "official_reference"
    needed = ["config.json", "stage1_weights.safetensors", "stage1_io.safetensors",
              "stage2_weights.safetensors", "stage2_io.safetensors"]
    missing = [n for n in needed if not (d / n).is_file()]
    if missing:
        pytest.fail(
            f"reference fixtures not found in {d} (missing {missing}); put the shared spec next to the repo "
            "(../shared/spec) or set NEURIPT_SHARED_SPEC=/path/to/spec"
        )
    return d
