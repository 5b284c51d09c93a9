"""Fixtures of the hostile-input suite (the tools are in ``hostile_tools.py``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def eegmat_edf(shared_data) -> Path:
    """A subject no fixture model was trained on (62 s, 500 Hz, 19 electrodes + A2-A1 + ECG)."""
    return shared_data / "eegmat" / "Subject05_2.edf"


@pytest.fixture(scope="session")
def base_raw(eegmat_edf):
    """The real recording, cropped to its first 30 s (every FIF variant is made from it)."""
    from neuript.data.io import read_raw

    raw = read_raw(eegmat_edf)
    raw.crop(0, 30.0, include_tmax=False)
    return raw


@pytest.fixture(scope="session")
def model_dir(finetuned) -> Path:
    """The fine-tuned fixture model's artifact (TCP montage, 64 Hz, 5 s windows, 0.1-30 Hz)."""
    return finetuned / "seed0" / "model"


@pytest.fixture(scope="session")
def earlier_predictions(finetuned, base_raw, tmp_path_factory) -> bytes:
    """A real predictions CSV of a good recording: what each case's folder holds as the earlier output."""
    from neuript.inference.predict import predict_file

    d = tmp_path_factory.mktemp("earlier")
    fif = d / "good_raw.fif"
    base_raw.save(fif, verbose="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(predict_file(fif, finetuned, out=d / "good.predictions.csv", device="cpu")).read_bytes()

