"""Baselines on real EEG: two EEGMAT recordings (subject 00, rest vs mental arithmetic).

This checks that the pipelines fit and predict on real, common-average-referenced (rank-deficient) EEG with
the right shapes and finite probabilities. It is *not* an accuracy claim (one subject, one split).
The data live in the repo-sibling ``../shared/data/eegmat`` (``shared_data`` fixture; the test fails when they
are absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuript.evaluate.baselines import make_baseline

SFREQ = 64.0  # spec §6: downstream data resampled to 64 Hz
WINDOW_S = 5.0  # EEGMAT window length (spec §6)
CROP_S = 60.0  # both recordings hold at least 60 s (the task file is ~62 s)
NON_SCALP = ["A2-A1"]  # the ear-reference channel stored as EEG


def _windows(path: Path) -> tuple[np.ndarray, list[str]]:
    mne = pytest.importorskip("mne")
    raw = mne.io.read_raw_edf(path, infer_types=True, preload=False, verbose="error")
    raw.crop(0.0, CROP_S, include_tmax=False).load_data(verbose="error")
    raw.pick("eeg", exclude=NON_SCALP)
    raw.resample(SFREQ, verbose="error")
    raw.set_eeg_reference("average", projection=False, verbose="error")
    data = raw.get_data(units="uV")  # (C, N) float64 µV
    n_times = int(round(WINDOW_S * SFREQ))
    n_win = data.shape[1] // n_times
    windows = data[:, : n_win * n_times].reshape(data.shape[0], n_win, n_times).transpose(1, 0, 2)
    return windows.astype(np.float32), raw.ch_names


@pytest.fixture(scope="module")
def eegmat_windows(eegmat_dir):
    rest, task = eegmat_dir / "Subject00_1.edf", eegmat_dir / "Subject00_2.edf"
    x_rest, names_rest = _windows(rest)
    x_task, names_task = _windows(task)
    assert names_rest == names_task
    return x_rest, x_task, names_rest


@pytest.mark.parametrize("name", ["riemann", "bandpower"])
def test_baseline_fits_and_predicts_on_real_eegmat(eegmat_windows, name):
    x_rest, x_task, ch_names = eegmat_windows
    n_win = int(CROP_S / WINDOW_S)
    assert x_rest.shape == x_task.shape == (n_win, 19, int(WINDOW_S * SFREQ))
    assert len(ch_names) == 19 and "A2-A1" not in ch_names and "ECG" not in ch_names
    assert np.all(np.isfinite(x_rest)) and 1.0 < float(np.std(x_rest)) < 500.0  # plausible µV scale
    # the common average makes every window's covariance rank-deficient
    assert np.linalg.matrix_rank(np.cov(x_rest[0].astype(np.float64))) == 18

    half = n_win // 2  # first half of each recording to fit, second half to predict (time-disjoint)
    x_tr = np.concatenate([x_rest[:half], x_task[:half]])
    y_tr = np.repeat([0, 1], half)
    x_te = np.concatenate([x_rest[half:], x_task[half:]])

    pipe = make_baseline(name, sfreq=SFREQ, seed=0).fit(x_tr, y_tr)
    proba = pipe.predict_proba(x_te)
    pred = pipe.predict(x_te)
    assert proba.shape == (len(x_te), 2)
    assert np.all(np.isfinite(proba)) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert pred.shape == (len(x_te),) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(list(pipe.classes_), [0, 1])
