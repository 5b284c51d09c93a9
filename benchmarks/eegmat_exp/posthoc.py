"""Refit the head on a fine-tuned network's IILP-pooled features: LR with C chosen by GroupKFold over training
subjects, features optionally standardised per subject (label-free). Also: seed-ensemble of the saved features."""
import json, sys, warnings
from pathlib import Path
import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import STORE, cv_head
from neuript.data.loader import WindowDataset
warnings.filterwarnings("ignore")

run = Path(sys.argv[1])
store = STORE
tr, va = WindowDataset([store], split="train", transform=None), WindowDataset([store], split="val", transform=None)
ytr, yva = tr.labels, va.labels
s_tr, s_va = tr.windows["subject"].astype(str).to_numpy(), va.windows["subject"].astype(str).to_numpy()
Cs = np.logspace(-6, 2, 17)


out = {}
for f in sorted(run.glob("feats_train_seed*.npy")):
    seed = f.stem.split("seed")[1]
    Ftr, Fva = np.load(f), np.load(run / f"feats_val_seed{seed}.npy")
    for proto in ("none", "featstd"):
        best, cv_bacc, pv = cv_head(Ftr, ytr, s_tr, Fva, s_va, proto, Cs)
        r = {"C": best, "cv_bacc": cv_bacc, "bacc": balanced_accuracy_score(yva, pv > 0.5), "auroc": roc_auc_score(yva, pv)}
        out.setdefault(proto, {})[seed] = r
        np.save(run / f"posthoc_{proto}_val_p_seed{seed}.npy", pv)
        print(f"{run.name} seed{seed} head-refit {proto:8s} C={best:.0e} cv {r['cv_bacc']:.3f} | val BAcc {r['bacc']:.3f} AUROC {r['auroc']:.3f}", flush=True)
for proto, d in out.items():
    b = np.array([r["bacc"] for r in d.values()]); a = np.array([r["auroc"] for r in d.values()])
    print(f"POSTHOC {run.name} {proto}: BAcc {100*b.mean():.1f} ± {100*b.std():.1f} AUROC {100*a.mean():.1f} ± {100*a.std():.1f} n={len(b)}")
    out[proto]["mean"] = {"bacc": b.mean(), "bacc_std": b.std(), "auroc": a.mean(), "auroc_std": a.std(), "n": len(b)}
json.dump(out, open(run / "posthoc.json", "w"), indent=1, default=float)
