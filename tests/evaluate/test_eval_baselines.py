"""Classical baselines learn synthetic known-answer tasks, survive rank deficiency and are deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from neuript.evaluate.baselines import (
    DEFAULT_BANDS,
    LogBandPower,
    available_baselines,
    make_baseline,
    run_baseline,
)
from neuript.evaluate.metrics import compute_metrics
from neuript.evaluate.report import write_report

SFREQ = 64.0
N_CH = 8
N_T = 320  # 5 s at 64 Hz, the EEGMAT window


def _car(x: np.ndarray) -> np.ndarray:
    """Common average reference: makes every window's covariance rank C-1."""
    return x - x.mean(axis=1, keepdims=True)


def alpha_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 has a 10 Hz rhythm 4x stronger than class 0 on every channel; CAR applied (rank-deficient)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    t = np.arange(N_T) / SFREQ
    x = 10.0 * rng.standard_normal((n, N_CH, N_T))
    amp = np.where(y == 1, 8.0, 2.0)[:, None, None] * rng.uniform(0.8, 1.2, (n, N_CH, 1))
    x += amp * np.sin(2 * np.pi * rng.uniform(9, 11, (n, 1, 1)) * t + rng.uniform(0, 2 * np.pi, (n, N_CH, 1)))
    return _car(x).astype(np.float32), y


def spatial_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Classes differ only in the sign of inter-channel correlations; every channel has the same spectrum."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    rho = 0.7
    mix = []
    for sign in (+1.0, -1.0):
        a = np.eye(N_CH)
        for i in range(0, N_CH, 2):  # pairs (0,1), (2,3), ... correlated with +rho or -rho
            a[i + 1, i] = sign * rho
            a[i + 1] /= np.linalg.norm(a[i + 1])  # unit row norm: identical channel variances
        mix.append(a)
    s = 10.0 * rng.standard_normal((n, N_CH, N_T))
    x = np.einsum("nij,njt->nit", np.stack([mix[k] for k in y]), s)
    return x.astype(np.float32), y


def _bacc(pipe, x, y) -> float:
    return compute_metrics(y, pipe.predict_proba(x), n_classes=2)["balanced_accuracy"]


@pytest.mark.parametrize("name", ["riemann", "bandpower"])
def test_baselines_learn_alpha_power_on_rank_deficient_data(name):
    x_tr, y_tr = alpha_task(120, seed=0)
    x_te, y_te = alpha_task(120, seed=1)
    assert np.linalg.matrix_rank(np.cov(x_tr[0].astype(np.float64))) == N_CH - 1
    pipe = make_baseline(name, sfreq=SFREQ, seed=0).fit(x_tr, y_tr)
    assert _bacc(pipe, x_te, y_te) > 0.9


def test_riemann_learns_spatial_covariance_that_band_power_cannot():
    x_tr, y_tr = spatial_task(100, seed=2)
    x_te, y_te = spatial_task(100, seed=3)
    riemann = make_baseline("riemann", sfreq=SFREQ, seed=0).fit(x_tr, y_tr)
    bandpower = make_baseline("bandpower", sfreq=SFREQ, seed=0).fit(x_tr, y_tr)
    assert _bacc(riemann, x_te, y_te) > 0.9
    assert _bacc(bandpower, x_te, y_te) < 0.75  # the task is spatial only, so the synthetic data is honest


@pytest.mark.parametrize("options", [{}, {"estimator": "scm", "shrinkage": 0.05}])
def test_riemann_covariances_are_spd_on_rank_deficient_input(options):
    x, y = alpha_task(40, seed=4)
    x = np.concatenate([x, x[:, :1] - x[:, 1:2]], axis=1)  # extra linearly dependent "bipolar" channel
    pipe = make_baseline("riemann", sfreq=SFREQ, seed=0, **options).fit(x, y)
    covs = pipe[:-2].transform(x)  # everything before TangentSpace and the classifier
    assert covs.shape == (40, N_CH + 1, N_CH + 1)
    assert np.linalg.eigvalsh(covs).min() > 0
    proba = pipe.predict_proba(x)
    assert proba.shape == (40, 2) and np.all(np.isfinite(proba))


@pytest.mark.parametrize("name", ["riemann", "bandpower"])
def test_baselines_are_deterministic_given_seed(name):
    x, y = alpha_task(60, seed=5)
    p1 = make_baseline(name, sfreq=SFREQ, seed=3).fit(x, y).predict_proba(x)
    p2 = make_baseline(name, sfreq=SFREQ, seed=3).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(p1, p2)


def test_multiclass_bandpower():
    rng = np.random.default_rng(6)
    n = 150
    y = np.repeat([0, 1, 2], n // 3)
    t = np.arange(N_T) / SFREQ
    freq = np.array([6.0, 10.0, 20.0])[y][:, None, None]  # theta / alpha / beta rhythm per class
    x = rng.standard_normal((n, N_CH, N_T)) + 3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, (n, N_CH, 1)))
    pipe = make_baseline("bandpower", sfreq=SFREQ, seed=0).fit(x[::2], y[::2])
    proba = pipe.predict_proba(x[1::2])
    assert proba.shape == (75, 3)
    assert compute_metrics(y[1::2], proba, n_classes=3)["balanced_accuracy"] > 0.9


def test_band_power_clips_bands_at_nyquist():
    x = np.random.default_rng(0).standard_normal((4, 2, 128))
    bp = LogBandPower(64.0).fit(x)
    assert [b[0] for b in bp.bands_] == ["delta", "theta", "alpha", "beta", "gamma"]
    assert bp.bands_[-1] == ("gamma", 30.0, 32.0)
    assert bp.transform(x).shape == (4, 2 * 5)
    bp = LogBandPower(20.0).fit(x)  # Nyquist 10 Hz: alpha clipped, beta and gamma dropped
    assert bp.bands_ == [("delta", 0.5, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 10.0)]
    assert len(bp.get_feature_names_out()) == 2 * 3
    assert np.all(np.isfinite(LogBandPower(64.0).fit(np.zeros((2, 2, 128))).transform(np.zeros((2, 2, 128)))))


def test_band_power_known_answer():
    """A pure 10 Hz sine has its power in the alpha band: A^2/2 (variance of the sine)."""
    t = np.arange(640) / 64.0
    x = (20.0 * np.sin(2 * np.pi * 10.0 * t))[None, None]
    bp = LogBandPower(64.0, bands=DEFAULT_BANDS, welch_seconds=4.0).fit(x)
    feats = bp.transform(x).reshape(len(bp.bands_))
    names = [b[0] for b in bp.bands_]
    assert names[int(np.argmax(feats))] == "alpha"
    assert 10 ** feats[names.index("alpha")] == pytest.approx(20.0**2 / 2, rel=0.05)


def test_errors():
    x = np.zeros((3, 2, 64))
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("svm", sfreq=SFREQ, seed=0)
    assert available_baselines() == ["bandpower", "riemann"]
    with pytest.raises(ValueError, match="no Welch frequency bin"):
        LogBandPower(64.0, bands=[("narrow", 10.1, 10.2)]).fit(x)
    with pytest.raises(ValueError, match="shape"):
        LogBandPower(64.0).fit(np.zeros((3, 64)))
    bp = LogBandPower(64.0).fit(x + np.random.default_rng(0).standard_normal(x.shape))
    with pytest.raises(ValueError, match="fitted on"):
        bp.transform(np.ones((3, 3, 64)))
    with pytest.raises(ValueError, match="nan"):
        LogBandPower(64.0).fit(np.full((3, 2, 64), np.nan))


def test_run_baseline_feeds_write_report(tmp_path):
    x_tr, y_tr = alpha_task(60, seed=7)
    x_te, y_te = alpha_task(40, seed=8)
    results = run_baseline("bandpower", x_tr, y_tr, x_te, y_te, sfreq=SFREQ, n_classes=2, seeds=[0, 1])
    agg = results["aggregate"]
    assert agg["balanced_accuracy"]["n"] == 2 and agg["balanced_accuracy"]["std"] == 0.0  # deterministic
    assert agg["balanced_accuracy"]["mean"] > 0.9
    json_path, md_path = write_report(results, tmp_path, title="bandpower on synthetic alpha")
    assert json_path.exists() and "Balanced accuracy" in md_path.read_text()
    with pytest.raises(ValueError, match="absent from y_train"):
        run_baseline("bandpower", x_tr, np.zeros_like(y_tr), x_te, y_te, sfreq=SFREQ, n_classes=2)


def _shifted_subjects(n_subjects: int, seed: int):
    """The alpha task with a per-subject gain (x0.3 .. x3): between-subject amplitude swamps the class effect
    unless each subject's features are standardised."""
    xs, ys, gs = [], [], []
    rng = np.random.default_rng(seed)
    for s in range(n_subjects):
        x, y = alpha_task(40, seed * 100 + s)
        xs.append(x * rng.choice([0.3, 3.0]) * rng.uniform(0.8, 1.2))
        ys.append(y)
        gs += [f"s{seed}-{s}"] * len(y)
    return np.concatenate(xs), np.concatenate(ys), np.array(gs)


def test_subject_wise_cv_chooses_C_on_training_subjects_and_alignment_helps():
    xtr, ytr, gtr = _shifted_subjects(6, 1)
    xte, yte, gte = _shifted_subjects(3, 2)
    plain = run_baseline("bandpower", xtr, ytr, xte, yte, sfreq=SFREQ, n_classes=2, groups_train=gtr, C="cv")
    assert plain["provenance"]["C"] in [10.0 ** k for k in range(-6, 3)]
    assert len(plain["provenance"]["cv_balanced_accuracy"]) == 9
    aligned = run_baseline("bandpower", xtr, ytr, xte, yte, sfreq=SFREQ, n_classes=2, groups_train=gtr,
                           groups_test=gte, align="features", C="cv")
    assert aligned["aggregate"]["balanced_accuracy"]["mean"] > 0.9
    assert aligned["aggregate"]["balanced_accuracy"]["mean"] > plain["aggregate"]["balanced_accuracy"]["mean"]
    ea = run_baseline("riemann", xtr, ytr, xte, yte, sfreq=SFREQ, n_classes=2, groups_train=gtr,
                      groups_test=gte, align="euclidean", C=1.0)
    assert ea["provenance"]["align"] == "euclidean" and ea["proba"].shape == (len(yte), 2)
    with pytest.raises(ValueError, match="need groups_train"):
        run_baseline("bandpower", xtr, ytr, xte, yte, sfreq=SFREQ, n_classes=2, C="cv")
