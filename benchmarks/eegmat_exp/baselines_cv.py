"""Band power / Riemann + LR with C chosen by GroupKFold CV over the training subjects, under 4 protocols."""
import json, sys, time, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import load_split, subject_transform, subject_standardise_features
from neuript.evaluate.baselines import LogBandPower
warnings.filterwarnings("ignore")

store, tag = sys.argv[1], sys.argv[2]
xtr, ytr, str_, ds = load_split(store, "train")
xva, yva, sva, _ = load_split(store, "val")
sf = ds.sfreq
Cs = np.logspace(-6, 2, 17)


def feats(kind, x):
    if kind == "bandpower":
        return LogBandPower(sf).fit(x).transform(x)
    from pyriemann.estimation import Covariances
    return Covariances(estimator="oas").fit_transform(x)


def tangent(ctr, cva):
    from pyriemann.tangentspace import TangentSpace
    ts = TangentSpace(metric="riemann").fit(ctr)
    return ts.transform(ctr), ts.transform(cva)


def fit_eval(ftr, ytr_, fva, C):
    sc = StandardScaler().fit(ftr)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(sc.transform(ftr), ytr_)
    return clf.predict_proba(sc.transform(fva))[:, 1]


res = {}
for kind in ("bandpower", "riemann"):
    for proto in ("none", "featstd", "chstd", "ea"):
        t0 = time.perf_counter()
        sig = "none" if proto == "featstd" else proto
        Ftr, Fva = feats(kind, subject_transform(xtr, str_, sig)), feats(kind, subject_transform(xva, sva, sig))
        cv = {C: [] for C in Cs}
        cvauc = {C: [] for C in Cs}
        for tr, te in GroupKFold(n_splits=7).split(Ftr, ytr, str_):
            a, b = tangent(Ftr[tr], Ftr[te]) if kind == "riemann" else (Ftr[tr], Ftr[te])
            if proto == "featstd":
                a, b = subject_standardise_features(a, str_[tr]), subject_standardise_features(b, str_[te])
            for C in Cs:
                p = fit_eval(a, ytr[tr], b, C)
                cv[C].append(balanced_accuracy_score(ytr[te], p > 0.5)); cvauc[C].append(roc_auc_score(ytr[te], p))
        best = max(Cs, key=lambda C: np.mean(cv[C]))
        a, b = tangent(Ftr, Fva) if kind == "riemann" else (Ftr, Fva)
        if proto == "featstd":
            a, b = subject_standardise_features(a, str_), subject_standardise_features(b, sva)
        p = fit_eval(a, ytr, b, best)
        p1 = fit_eval(a, ytr, b, 1.0)
        r = {"C": float(best), "cv_bacc": float(np.mean(cv[best])), "cv_auroc": float(np.mean(cvauc[best])),
             "val_bacc": balanced_accuracy_score(yva, p > 0.5), "val_auroc": roc_auc_score(yva, p),
             "val_bacc_C1": balanced_accuracy_score(yva, p1 > 0.5), "val_auroc_C1": roc_auc_score(yva, p1),
             "cv_curve": {f"{C:.0e}": round(float(np.mean(cv[C])), 4) for C in Cs},
             "secs": time.perf_counter() - t0}
        res[f"{kind}/{proto}"] = r
        print(f"{tag} {kind:9s} {proto:8s} C={best:.0e} cvBAcc={r['cv_bacc']:.3f} cvAUC={r['cv_auroc']:.3f} | "
              f"val BAcc={r['val_bacc']:.3f} AUROC={r['val_auroc']:.3f} | C=1: {r['val_bacc_C1']:.3f}/{r['val_auroc_C1']:.3f}"
              f"  ({r['secs']:.0f}s)", flush=True)
json.dump(res, open(f"neuript_runs/eegmat_exp/baselines_{tag}.json", "w"), indent=1)
