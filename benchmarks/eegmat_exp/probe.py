"""Linear probe of a (random or pretrained) NeurIPT encoder on EEGMAT: IILP-style features of every encoder
output (mean and log-std over time, averaged over the channels of each lobe group, or kept per channel), then
logistic regression with C chosen by GroupKFold over the training subjects, with and without per-subject
feature standardisation (label-free). Reports val BAcc / AUROC; nothing is tuned on the validation subjects.

    python benchmarks/eegmat_exp/probe.py --name P_rand --seeds 0,1,2 [--pretrained RUN] [--per-channel]
"""
import argparse, json, sys, time, warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import STORE, cv_head, differenced, load_split, subject_transform  # noqa: E402
from neuript.data.preprocess import alaw  # noqa: E402
from neuript.runtime import seed_everything  # noqa: E402
from neuript.train.finetune import FinetuneConfig, build_classifier_for, load_finetune_data  # noqa: E402

warnings.filterwarnings("ignore")
p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--store", default=STORE)
p.add_argument("--pretrained", default=None)
p.add_argument("--seeds", default="0")
p.add_argument("--align", default="none", choices=["none", "chstd", "ea"])
p.add_argument("--per-channel", action="store_true", help="keep channels instead of averaging over lobe groups")
p.add_argument("--blocks", default="all", help="comma list of encoder outputs to use (0 = embedding), or all")
p.add_argument("--stats", default="meanstd", choices=["mean", "logstd", "meanstd"])
p.add_argument("--diff", default="no", choices=["no", "yes", "both"],
               help="first difference of the input (flattens the 1/f spectrum); both: features of raw and differenced")
p.add_argument("--preemph", type=float, default=1.0, help="coefficient of the --diff filter x[t] - a x[t-1]")
args = p.parse_args()
out = Path("neuript_runs/eegmat_exp/probe") / args.name
out.mkdir(parents=True, exist_ok=True)

cfg = FinetuneConfig(stores=[args.store], preset="neuript_tiny", pretrained=args.pretrained)
data = load_finetune_data(cfg)
xtr, ytr, s_tr, _ = load_split(args.store, "train")
xva, yva, s_va, _ = load_split(args.store, "val")
xtr, xva = subject_transform(xtr, s_tr, args.align), subject_transform(xva, s_va, args.align)
if args.align != "none":
    xtr, xva = 20 * xtr, 20 * xva


inputs_tr, inputs_va = [], []
if args.diff in ("no", "both"):
    inputs_tr.append(xtr); inputs_va.append(xva)
if args.diff in ("yes", "both"):
    inputs_tr.append(differenced(xtr, xtr, args.preemph)); inputs_va.append(differenced(xva, xtr, args.preemph))
inputs_tr = [alaw(torch.tensor(a, dtype=torch.float32), A=0.25) for a in inputs_tr]
inputs_va = [alaw(torch.tensor(a, dtype=torch.float32), A=0.25) for a in inputs_va]
Cs = np.logspace(-6, 2, 9)


@torch.no_grad()
def features(model, x):
    model.eval()
    w = model.group_weights.float()
    rows = []
    for k in range(0, len(x), 64):
        _, feats = model(x[k:k + 64], return_features=True)
        maps = model.pooled_features(feats) if hasattr(model, "pooled_features") else feats
        keep = range(len(maps)) if args.blocks == "all" else [int(b) for b in args.blocks.split(",")]
        parts = []
        for i in keep:
            f = maps[i].float()  # (B, C, L, d)
            stats = []
            if args.stats in ("mean", "meanstd"):
                stats.append(f.mean(2))
            if args.stats in ("logstd", "meanstd"):
                stats.append(0.5 * torch.log(f.var(2) + 1e-4))
            for s in stats:
                parts.append(s.flatten(1) if args.per_channel else torch.einsum("bcd,gc->bgd", s, w).flatten(1))
        rows.append(torch.cat(parts, 1))
    return torch.cat(rows).numpy()


res = {}
for seed in [int(s) for s in args.seeds.split(",")]:
    t0 = time.perf_counter()
    seed_everything(seed)
    model = build_classifier_for(cfg, data)
    Ftr = np.concatenate([features(model, a) for a in inputs_tr], 1)
    Fva = np.concatenate([features(model, a) for a in inputs_va], 1)
    t_feat = time.perf_counter() - t0
    for proto in ("none", "featstd"):
        best, cv_bacc, pv = cv_head(Ftr, ytr, s_tr, Fva, s_va, proto, Cs)
        per_subj = {s: (roc_auc_score(yva[s_va == s], pv[s_va == s]) if len(set(yva[s_va == s])) > 1 else None)
                    for s in np.unique(s_va)}
        r = {"C": best, "cv_bacc": cv_bacc, "bacc": balanced_accuracy_score(yva, pv > 0.5),
             "auroc": roc_auc_score(yva, pv), "per_subject_auroc": per_subj, "n_features": Ftr.shape[1]}
        res.setdefault(proto, {})[seed] = r
        print(f"{args.name} seed{seed} {proto:8s} feats {Ftr.shape[1]} C={best:.0e} cv {r['cv_bacc']:.3f} | val BAcc "
              f"{r['bacc']:.3f} AUROC {r['auroc']:.3f} | {' '.join(f'{v:.2f}' for v in per_subj.values())} "
              f"({t_feat:.0f}s feats)", flush=True)
for proto, d in res.items():
    b = np.array([r["bacc"] for r in d.values()]); a = np.array([r["auroc"] for r in d.values()])
    d["mean"] = {"bacc": b.mean(), "bacc_std": b.std(), "auroc": a.mean(), "auroc_std": a.std(), "n": len(b)}
    print(f"PROBE {args.name} {proto}: BAcc {100*b.mean():.1f} ± {100*b.std():.1f} AUROC {100*a.mean():.1f} ± "
          f"{100*a.std():.1f} n={len(b)}", flush=True)
json.dump({"args": vars(args), **res}, open(out / "probe.json", "w"), indent=1, default=float)
