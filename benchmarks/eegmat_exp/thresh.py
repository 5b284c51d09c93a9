"""Threshold diagnostics of saved val logits: BAcc at logit 0 vs at the best (oracle) threshold, per-subject AUROC,
and the logits z-scored per subject (label-free, transductive: each subject's own mean and std of its logits) —
AUROC and BAcc at z > 0 — which removes the per-subject offsets that pooled AUROC mixes in."""
import sys, warnings
from pathlib import Path
import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from common import per_subject_auroc, run_store, subject_standardise_features, val_targets
warnings.filterwarnings("ignore")
for run in sys.argv[1:]:
    y, s = val_targets(run_store(run))
    for f in sorted(Path(run).glob("val_logits_seed*.npy")):
        l = np.load(f)
        ths = np.unique(l)
        best = max(ths, key=lambda t: balanced_accuracy_score(y, l >= t))
        per = per_subject_auroc(y, l, s)
        z = subject_standardise_features(l[:, None], s)[:, 0]
        print(f"{Path(run).name} {f.stem}: BAcc@0 {balanced_accuracy_score(y, l > 0):.3f}  oracle-thr BAcc {balanced_accuracy_score(y, l >= best):.3f} (thr {best:+.2f}) "
              f"AUROC {roc_auc_score(y, l):.3f}  per-subject AUROC {per}  mean logit rest {l[y==0].mean():+.2f} task {l[y==1].mean():+.2f}  "
              f"per-subject z: AUROC {roc_auc_score(y, z):.3f} BAcc(z>0) {balanced_accuracy_score(y, z > 0):.3f}")
