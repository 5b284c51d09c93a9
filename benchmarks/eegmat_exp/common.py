"""Shared helpers for the EEGMAT fine-tuning experiments (raw windows, subject ids, per-subject alignment)."""
from __future__ import annotations
import numpy as np
from neuript.data.loader import WindowDataset


def load_split(store, split):
    ds = WindowDataset([store], split=split, transform=None)
    x = np.stack([ds[i]["x"].numpy() for i in range(len(ds))]).astype(np.float64)
    subj = ds.windows["subject"].astype(str).to_numpy()
    return x, ds.labels.copy(), subj, ds


#: the TCP store every script of this folder reads unless told otherwise (FINDINGS.md §5)
STORE = "neuript_runs/eegmat_exp/stores/eegmat"


def val_targets(store=STORE):
    """Labels and subject ids of the validation windows, in the order ``ft.py`` saves its val logits."""
    ds = WindowDataset([store], split="val", transform=None)
    return ds.labels, ds.windows["subject"].astype(str).to_numpy()


def run_store(run, default=STORE):
    """The store an ``ft.py`` run was trained and scored on (its ``summary.json``), for reading its val targets."""
    import json
    from pathlib import Path

    summary = Path(run) / "summary.json"
    return json.loads(summary.read_text())["args"]["store"] if summary.exists() else default


def per_subject_auroc(y, score, subj, digits=3):
    """subject -> AUROC of ``score`` within that subject's windows."""
    from sklearn.metrics import roc_auc_score

    return {k: round(roc_auc_score(y[subj == k], score[subj == k]), digits) for k in np.unique(subj)}


def _inv_sqrtm(R, eps=1e-10):
    w, V = np.linalg.eigh(R)
    w = np.maximum(w, eps * w.max())
    return (V * w ** -0.5) @ V.T


def subject_transform(x, subj, mode):
    """Per-subject unsupervised alignment of windows (n, C, T) in µV (uses only that subject's unlabeled windows).

    none   : unchanged
    chstd  : divide every channel by that subject's std of the channel (over all its windows)
    ea     : Euclidean alignment (He & Wu 2019): X <- R^{-1/2} X with R = mean window covariance of the subject
    """
    if mode == "none":
        return x.copy()
    out = np.empty_like(x)
    for s in np.unique(subj):
        m = subj == s
        xs = x[m]
        if mode == "chstd":
            sd = xs.transpose(1, 0, 2).reshape(x.shape[1], -1).std(axis=1)
            out[m] = xs / sd[None, :, None]
        elif mode == "ea":
            xc = xs - xs.mean(axis=-1, keepdims=True)
            covs = np.einsum("nct,ndt->ncd", xc, xc) / xs.shape[-1]
            R = covs.mean(0)
            R = R + 1e-6 * np.trace(R) / len(R) * np.eye(len(R))
            out[m] = np.einsum("cd,ndt->nct", _inv_sqrtm(R), xs)
        else:
            raise ValueError(mode)
    return out


def subject_standardise_features(f, subj):
    out = np.empty_like(f)
    for s in np.unique(subj):
        m = subj == s
        out[m] = (f[m] - f[m].mean(0)) / (f[m].std(0) + 1e-8)
    return out


def fit_lr(a, y, b, C):
    """Standardise on ``a``, fit a class-balanced logistic regression, return P(class 1) for ``b``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(a)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(sc.transform(a), y)
    return clf.predict_proba(sc.transform(b))[:, 1]


def cv_head(Ftr, ytr, s_tr, Fva, s_va, proto, Cs, n_folds=7):
    """LR head on features: C chosen by GroupKFold over the training subjects (never the validation ones), with
    ``proto="featstd"`` the features standardised per subject (label-free). Returns (C, CV BAcc, val P(class 1))."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    cv = {C: [] for C in Cs}
    for a_i, b_i in GroupKFold(n_folds).split(Ftr, ytr, s_tr):
        a, b = Ftr[a_i], Ftr[b_i]
        if proto == "featstd":
            a, b = subject_standardise_features(a, s_tr[a_i]), subject_standardise_features(b, s_tr[b_i])
        for C in Cs:
            cv[C].append(balanced_accuracy_score(ytr[b_i], fit_lr(a, ytr[a_i], b, C) > 0.5))
    best = max(Cs, key=lambda C: np.mean(cv[C]))
    a, b = ((Ftr, Fva) if proto == "none"
            else (subject_standardise_features(Ftr, s_tr), subject_standardise_features(Fva, s_va)))
    return best, float(np.mean(cv[best])), fit_lr(a, ytr, b, best)



def differenced(a, ref, coef=1.0):
    """Pre-emphasis ``x[t] - coef * x[t-1]`` along time (``coef=1``: first difference, which flattens the 1/f
    spectrum; smaller ``coef`` tilts it less), scaled so that the filtered training input ``ref`` keeps its std
    (the A-law companding sees the same amplitude range)."""
    def f(x):
        return x - coef * np.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    return f(a) * ref.std() / f(ref).std()
