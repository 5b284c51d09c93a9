"""Two-view ensembles of saved val logits: for each seed, the mean of the logits of run A and run B (same seed),
then mean ± std over seeds, with each run alone and the per-subject AUROC.

    python benchmarks/eegmat_exp/ensemble.py neuript_runs/eegmat_exp/ft/RUN_A neuript_runs/eegmat_exp/ft/RUN_B
"""
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from common import per_subject_auroc, run_store, val_targets

warnings.filterwarnings("ignore")


def metrics(logit):
    per = {k[-2:]: v for k, v in per_subject_auroc(y, logit, s, digits=2).items()}
    return balanced_accuracy_score(y, logit > 0), roc_auc_score(y, logit), per


a, b = (Path(p) for p in sys.argv[1:3])
store = run_store(a)
assert store == run_store(b), "the two runs were scored on different stores"
y, s = val_targets(store)
seeds = sorted(int(f.stem.split("seed")[1]) for f in a.glob("val_logits_seed*.npy")
               if (b / f.name).exists())
rows = {a.name: [], b.name: [], "ensemble": []}
for seed in seeds:
    la, lb = (np.load(r / f"val_logits_seed{seed}.npy") for r in (a, b))
    for name, logit in ((a.name, la), (b.name, lb), ("ensemble", (la + lb) / 2)):
        m = metrics(logit)
        rows[name].append(m)
        print(f"seed {seed} {name:24s} BAcc {100 * m[0]:.1f} AUROC {100 * m[1]:.1f} per-subject AUROC {m[2]}")
for name, ms in rows.items():
    ba, au = np.array([m[0] for m in ms]), np.array([m[1] for m in ms])
    print(f"{name:24s} BAcc {100 * ba.mean():.1f} ± {100 * ba.std():.1f}  AUROC {100 * au.mean():.1f} ± {100 * au.std():.1f}"
          f"  ({len(ms)} seeds)")
