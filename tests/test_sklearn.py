"""`neuript.sklearn.NeurIPTClassifier` on real EEGMAT windows: fit / predict / predict_proba / score, inside a
Pipeline with GroupKFold, clone / get_params / set_params, arbitrary labels, the MoE loss in the training loss, the
preprocessing equal to neuript's, and the scikit-learn estimator checks that apply to 3D input."""

from __future__ import annotations

import warnings

import mne
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from neuript.data.preprocess import PreprocessConfig, preprocess_raw
from neuript.model.moe import MixtureOfExperts
from neuript.sklearn import NeurIPTClassifier, preprocess_windows, training_loss

TINY = {"d_model": 16, "n_heads": 2, "d_ff": 16, "expert_hidden": 8, "shared_hidden": 16,
        "merge_factors": [1, 4, 1, 2], "n_experts": [0, 0, 2, 4]}
SFREQ = 128.0  # the 500 Hz recordings resampled once at load: keeps the per-window filters cheap


@pytest.fixture(scope="module")
def eegmat(eegmat_dir):
    """2-s windows in volts of subjects 0-2, 4 per recording: X (24, 19, 256), y rest/task, groups = subject."""
    xs, ys, groups = [], [], []
    for subject in (0, 1, 2):
        for session, label in ((1, "rest"), (2, "task")):
            raw = mne.io.read_raw_edf(eegmat_dir / f"Subject{subject:02d}_{session}.edf", preload=True,
                                      verbose="error")
            raw.drop_channels(["EEG A2-A1", "ECG ECG"])
            raw.resample(SFREQ, verbose="error")
            data = raw.get_data()[:, 1280:1280 + 4 * 256]
            xs.append(data.reshape(19, 4, 256).transpose(1, 0, 2))
            ys += [label] * 4
            groups += [subject] * 4
    return np.concatenate(xs), np.array(ys), np.array(groups), list(raw.ch_names)


def _clf(ch_names, **kw):
    params = dict(sfreq=SFREQ, ch_names=ch_names, model_overrides=TINY, epochs=1, batch_size=8, random_state=0)
    params.update(kw)
    return NeurIPTClassifier(**params)


def test_fit_predict_proba_score_with_string_labels(eegmat):
    X, y, _, names = eegmat
    rng = torch.random.get_rng_state()
    clf = _clf(names)
    assert clf.fit(X, y) is clf
    assert list(clf.classes_) == ["rest", "task"] and clf.n_chans_in_ == 19 and clf.n_times_in_ == 256
    assert clf.n_times_ == 128 and clf.model_.n_times == 128 and clf.model_.sfreq == 64.0
    assert clf.ch_names_[0] == "Fp1" and np.isfinite(clf.loss_curve_).all()
    proba = clf.predict_proba(X)
    assert proba.shape == (24, 2) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    pred = clf.predict(X)
    assert set(pred) <= {"rest", "task"} and list(pred) == list(clf.classes_[proba.argmax(1)])
    assert 0.0 <= clf.score(X, y) <= 1.0
    # the global torch RNG is not consumed; the same random_state gives the same model
    assert torch.equal(torch.random.get_rng_state(), rng)
    np.testing.assert_allclose(_clf(names).fit(X, y).predict_proba(X), proba, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="fitted on 19 x 256"):
        clf.predict(X[:, :18])
    with pytest.raises(ValueError, match=r"\(n_windows, n_channels, n_times\)"):
        clf.predict(X[:, :, 0])


def test_in_a_pipeline_with_group_kfold(eegmat):
    X, y, groups, names = eegmat
    pipe = Pipeline([("to_uv", FunctionTransformer(lambda a: a * 1e6)), ("clf", _clf(names, unit="uV"))])
    scores = cross_val_score(pipe, X, y, groups=groups, cv=GroupKFold(n_splits=3))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    pipe.set_params(clf__epochs=2)
    assert pipe.get_params()["clf__epochs"] == 2


def test_clone_get_params_set_params(eegmat):
    _, _, _, names = eegmat
    clf = _clf(names, model_overrides=dict(TINY), preprocessing={"notch": 60.0})
    params = clf.get_params()
    assert params["sfreq"] == SFREQ and params["preprocessing"] == {"notch": 60.0} and params["epochs"] == 1
    twin = clone(clf)
    assert twin is not clf and twin.get_params()["model_overrides"] == TINY
    assert twin.get_params()["model_overrides"] is not clf.model_overrides  # deep-copied, not shared
    assert clf.set_params(epochs=3, lr=1e-3) is clf and clf.epochs == 3 and clf.lr == 1e-3
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(n_epochs=3)
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 19, 256)))


def test_integer_labels_and_three_classes(eegmat):
    X, y, groups, names = eegmat
    clf = _clf(names).fit(X[:16], groups[:16] * 10 + 7)  # labels 7, 17 (two subjects): one logit
    assert list(clf.classes_) == [7, 17] and clf.model_.n_outputs == 1
    labels = np.array(["a", "b", "c"])[groups]
    clf3 = _clf(names).fit(X, labels)
    assert clf3.model_.n_outputs == 3 and clf3.predict_proba(X[:4]).shape == (4, 3)
    assert set(clf3.predict(X)) <= {"a", "b", "c"}
    with pytest.raises(ValueError, match="single class"):
        _clf(names).fit(X[:4], y[:4])


def test_the_moe_auxiliary_loss_is_part_of_the_training_loss(eegmat, monkeypatch):
    """The MoE router's gradient of the training loss is that of the task loss plus aux_weight times that of the
    auxiliary loss, and fit() trains with that loss at the estimator's aux_weight."""
    import neuript.sklearn as sk

    X, y, _, names = eegmat
    clf = _clf(names, aux_weight=0.5)
    seen = []

    def spy(model, loss_fn, x, yb, *, aux_weight):
        seen.append(aux_weight)
        return training_loss(model, loss_fn, x, yb, aux_weight=aux_weight)

    monkeypatch.setattr(sk, "training_loss", spy)
    clf.fit(X, y)
    assert seen and set(seen) == {0.5}

    model = clf.model_.eval()  # eval: no dropout / gate noise, so the three forwards are the same function
    router = next(m for m in model.modules() if isinstance(m, MixtureOfExperts)).gate.weight
    x = torch.from_numpy(clf._model_input(X[:8]))
    yb = torch.as_tensor(np.searchsorted(clf.classes_, y[:8]))
    from neuript.train.finetune import BalancedLoss

    loss_fn = BalancedLoss(np.array([0.5, 0.5]), binary=True)

    def grad(fn):
        model.zero_grad()
        fn().backward()
        return router.grad.clone()

    g_total = grad(lambda: training_loss(model, loss_fn, x, yb, aux_weight=0.5))
    g_task = grad(lambda: training_loss(model, loss_fn, x, yb, aux_weight=0.0))
    g_aux = grad(lambda: (model(x), model.aux_loss)[1])
    assert g_aux.abs().max() > 0
    torch.testing.assert_close(g_total, g_task + 0.5 * g_aux, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("reference", ["as_recorded", "tcp"])
def test_preprocessing_equals_neuripts_preprocess_raw(eegmat, reference):
    X, _, _, names = eegmat
    cfg = PreprocessConfig(reference=reference, sfreq=64.0, window_s=2.0, reject_uv=None, flat_uv=None)
    ours, out_names = preprocess_windows(X[:3] * 1e6, names, sfreq=SFREQ, config=cfg)
    info = mne.create_info(names, SFREQ, "eeg")
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, ref_names, _, _ = preprocess_raw(mne.io.RawArray(X[i], info, verbose="error"), cfg)
        assert out_names == ref_names
        np.testing.assert_allclose(ours[i], ref, rtol=0, atol=1e-3)  # µV, float32 rounding


def test_pretrained_encoder_with_tcp_montage(eegmat, pretrained):
    from neuript.inference.artifacts import load_pretrained

    X, y, _, names = eegmat
    clf = _clf(names, pretrained=str(pretrained), preprocessing={"reference": "tcp"}, lr=1e-12,
               model_overrides={"dropout": 0.0})
    clf.fit(X, y)
    assert clf.ch_names_[0] == "Fp1-F7" and len(clf.ch_names_) == 20 and clf.model_.encoder.cfg.d_model == 16
    pre = load_pretrained(pretrained)
    for k, v in pre.encoder.state_dict().items():  # lr ~ 0: the encoder is still the pretrained one
        torch.testing.assert_close(clf.model_.encoder.state_dict()[k], v, rtol=0, atol=1e-6)


# scikit-learn's estimator checks. `check_estimator` runs none of them for an estimator whose tag says it takes
# 3D input (two_d_array=False), so the checks that apply are run directly. They cannot apply when they feed
# 2D arrays of random features (make_blobs) to fit: check_fit_score_takes_y, check_estimators_overwrite_params,
# check_dont_overwrite_parameters, check_estimators_fit_returns_self, check_readonly_memmap_input,
# check_n_features_in_after_fitting, check_positive_only_tag_during_fit and all the legacy fit/predict checks
# (classifiers_train, one_label, dtype_object, ...). Their intent is covered above on real 3D windows:
# fit returns self, parameters are not changed by fit (below), single-class and shape errors, n_chans_in_.
APPLICABLE_CHECKS = ("check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
                     "check_estimator_repr", "check_no_attributes_set_in_init", "check_estimators_unfitted",
                     "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order",
                     "check_get_params_invariance", "check_set_params", "check_parameters_default_constructible")


@pytest.mark.parametrize("check", APPLICABLE_CHECKS)
def test_sklearn_estimator_checks(check, eegmat):
    from sklearn.utils import estimator_checks

    _, _, _, names = eegmat
    getattr(estimator_checks, check)("NeurIPTClassifier", _clf(names))


def test_fit_does_not_change_parameters_and_reads_readonly_input(eegmat):
    X, y, _, names = eegmat
    clf = _clf(names, model_overrides=dict(TINY))
    before = clone(clf).get_params()
    X_ro = X.copy()
    X_ro.setflags(write=False)
    clf.fit(X_ro, y)
    after = clf.get_params()
    assert before.keys() == after.keys()
    assert all(before[k] == after[k] for k in before)
