"""MentalArithmetic (EEGMAT) reproduction: pretrained NeurIPT vs NeurIPT from scratch vs classical baselines.

    python -m benchmarks.mental_arithmetic --eegmat ../shared/data/eegmat --eegmmidb ../shared/data/eegmmidb

Pipeline (everything through the public API, exactly what the CLI does):

1. ``eegmat`` store (20-ch TCP bipolar montage, 64 Hz, 5 s windows, the paper's subject split 00-27 / 28-31 /
   32-35) and an ``eegmmidb`` pretraining store from every available run.
2. (a) AAMP pretraining on EEGMMIDB, then fine-tuning on EEGMAT; (b) the same fine-tuning from a random
   initialisation; (c) classical baselines (Riemannian tangent space + logistic regression; filter-bank log band
   power + logistic regression) on the same windows. Every arm runs over the same seeds.
3. Test-split metrics when the test subjects (Subject32-35) are in ``--eegmat``; otherwise validation metrics,
   said so in the table (they are optimistic: the validation split also chose the early-stopping epoch).

Writes ``OUT/results.json`` and the table into BENCHMARKS.md (section ``mental_arithmetic``), next to the paper.
"""

from __future__ import annotations

import argparse
import sys
import json
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import REPO, machine, write_section

PAPER = {
    "NeurIPT (paper)": {"balanced_accuracy": 86.46, "auc_pr": 78.27, "auroc": 91.11},
    "CBraMod (paper)": {"balanced_accuracy": 72.56, "auc_pr": 62.67, "auroc": 79.05},
}
METRICS = ("balanced_accuracy", "auc_pr", "auroc")


def _windows(store: Path, split: str):
    from neuript.data.loader import WindowDataset

    ds = WindowDataset([store], split=split, transform=None)
    x = np.stack([ds[i]["x"].numpy() for i in range(len(ds))]) if len(ds) else np.zeros((0,))
    return x, ds.labels, ds.sfreq


def _fmt(agg: dict) -> str:
    return " | ".join(
        f"{100 * agg[m]['mean']:.2f} ± {100 * agg[m]['std']:.2f}" if agg.get(m) and agg[m]["mean"] is not None
        else "n/a" for m in METRICS)


ARMS = ("scratch", "scratch_aligned", "scratch_preemph", "scratch_featnorm", "pretrained", "pretrained_featnorm",
        "pretrained_continued", "baselines")

#: the recipe of docs/training.md: pre-emphasis 0.9 of the input, mean + log-std IILP pooling, lr 2e-3, whole
#: windows (2.5 s crops give crop-sized log-std features that the per-subject statistics of whole windows do not
#: fit: training losses of 2-5 in the first epoch); 3 epochs (252 steps at batch 16 on the EEGMAT training split).
#: The ``_featnorm`` arms add per-subject feature normalisation. Measured: benchmarks/eegmat_exp/FINDINGS.md §12.
RECIPE = dict(lr=2e-3, train_crop_s=None, preemphasis=0.9, pool="meanstd", epochs=3)


def _per_subject(table_like: dict) -> dict[str, float]:
    return {subj: agg["balanced_accuracy"]["mean"] for subj, agg in (table_like.get("per_subject") or {}).items()}


def _baseline_per_subject(proba, y, subjects) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score

    out = {}
    for s in sorted(set(subjects)):
        sel = subjects == s
        out[s] = float(balanced_accuracy_score(y[sel], proba[sel].argmax(1))) if len(set(y[sel])) > 1 else None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eegmat", type=Path, default=REPO.parent / "shared" / "data" / "eegmat")
    p.add_argument("--eegmmidb", type=Path, default=REPO.parent / "shared" / "data" / "eegmmidb")
    p.add_argument("--out", type=Path, default=REPO / "neuript_runs" / "mental_arithmetic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="neuript_tiny")
    p.add_argument("--model-set", action="append", default=[], help="KEY=JSON model override (repeatable)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--continue-steps", type=int, default=100,
                   help="steps of continued pretraining on the EEGMAT training recordings (labels unused)")
    p.add_argument("--pretrain-batch", type=int, default=16)
    p.add_argument("--pretrain-reject-uv", type=float, default=None,
                   help="amplitude rejection for the pretraining windows (paper: 100; default off, see docstring)")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs of the arms outside the recipe")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="fine-tuning peak LR (default: neuript finetune's)")
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--recipe-crop", type=float, default=0.0,
                   help="training crop (s) of the recipe arms; 0: whole windows")
    p.add_argument("--align", default="channel", help="alignment of the aligned arm: channel or euclidean")
    p.add_argument("--precision", default="auto", help="auto (bf16 on a GPU or a CPU with native bf16, else fp32), bf16 or fp32")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = p.parse_args(argv)

    from neuript.data.loader import WindowDataset
    from neuript.data.prepare import prepare_store
    from neuript.data.recipes import get_recipe
    from neuript.evaluate.baselines import run_baseline
    from neuript.train.finetune import FinetuneConfig, finetune
    from neuript.train.pretrain import PretrainConfig, pretrain

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    arms_wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
    overrides = {}
    for item in args.model_set:
        k, v = item.split("=", 1)
        overrides[k] = json.loads(v)
    out = args.out
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), source=args.eegmat, out=out / "stores" / "eegmat", n_jobs=args.n_jobs)
        prepare_store(get_recipe("eegmmidb", reject_uv=args.pretrain_reject_uv), source=args.eegmmidb,
                      out=out / "stores" / "eegmmidb", n_jobs=args.n_jobs)
    eegmat, mmidb = out / "stores" / "eegmat", out / "stores" / "eegmmidb"
    timings["prepare_s"] = time.perf_counter() - t0

    pt = pt2 = None
    unknown = sorted(set(arms_wanted) - set(ARMS))
    if unknown:
        p.error(f"unknown arm(s) {unknown}; choose from {','.join(ARMS)}")
    if {"pretrained", "pretrained_featnorm", "pretrained_continued"} & set(arms_wanted):
        t = time.perf_counter()
        pt = pretrain(PretrainConfig(stores=[str(mmidb)], out=str(out / "pretrain"), preset=args.preset,
                                     model_overrides=overrides, epochs=10_000, max_steps=args.pretrain_steps,
                                     batch_size=args.pretrain_batch, lr=1e-3, precision=args.precision, seed=520,
                                     checkpoint_every=50),
                      resume=(out / "pretrain" / "checkpoint").exists())
        timings["pretrain (EEGMMIDB)"] = time.perf_counter() - t
    if "pretrained_continued" in arms_wanted:
        t = time.perf_counter()
        # the EEGMAT training recordings only (labels unused; validation and test recordings untouched)
        pt2 = pretrain(PretrainConfig(stores=[str(mmidb), str(eegmat)], split="pretrain,train",
                                      out=str(out / "pretrain_continued"), init=str(pt), epochs=10_000,
                                      max_steps=args.continue_steps, batch_size=args.pretrain_batch, lr=3e-4,
                                      precision=args.precision, seed=521, checkpoint_every=50),
                       resume=(out / "pretrain_continued" / "checkpoint").exists())
        timings["continued pretraining (+ EEGMAT train)"] = time.perf_counter() - t

    arms: dict[str, dict] = {}
    per_subject: dict[str, dict] = {}
    recipe = dict(RECIPE, train_crop_s=args.recipe_crop or None)
    featnorm = dict(recipe, feature_norm="subject")
    ft_arms = {
        "scratch": ("NeurIPT from scratch (paper protocol)", None, {}),
        "scratch_aligned": (f"NeurIPT from scratch (aligned: {args.align})", None, {"align": args.align}),
        "scratch_preemph": ("NeurIPT from scratch, recipe (paper protocol)", None, recipe),
        "scratch_featnorm": ("NeurIPT from scratch, recipe (aligned: features per subject)", None, featnorm),
        "pretrained": ("NeurIPT pretrained → fine-tuned (paper protocol)", pt, {}),
        "pretrained_featnorm": ("NeurIPT pretrained → fine-tuned, recipe (aligned: features per subject)", pt,
                                featnorm),
        "pretrained_continued": ("NeurIPT pretrained + continued on EEGMAT train → fine-tuned", pt2, {}),
    }
    for key, (name, pretrained, options) in ft_arms.items():
        if key not in arms_wanted:
            continue
        t = time.perf_counter()
        opts = {"lr": args.lr, "epochs": args.epochs, **options}
        run = finetune(FinetuneConfig(stores=[str(eegmat)], out=str(out / f"ft_{key}"),
                                      pretrained=str(pretrained) if pretrained else None, preset=args.preset,
                                      model_overrides=overrides, batch_size=args.batch_size,
                                      patience=args.patience, seeds=seeds, precision=args.precision, **opts))
        timings[name] = time.perf_counter() - t
        arms[name] = json.loads((run / "report.json").read_text())
        per_subject[name] = _per_subject(arms[name])

    split = next(iter(arms.values()))["split"] if arms else ("test" if len(WindowDataset([eegmat], split="test")) else "val")
    if "baselines" in arms_wanted:
        xtr, ytr, sfreq = _windows(eegmat, "train")
        xte, yte, _ = _windows(eegmat, split)
        gtr = WindowDataset([eegmat], split="train", transform=None).windows["subject"].astype(str).to_numpy()
        gte = WindowDataset([eegmat], split=split, transform=None).windows["subject"].astype(str).to_numpy()
        for method, label in (("bandpower", "Band power + LR"), ("riemann", "Riemann tangent space + LR")):
            for align, tag in (("none", "paper protocol"), ("features", "aligned: features per subject"),
                               ("euclidean", "aligned: Euclidean")):
                name = f"{label}, C by subject-wise CV ({tag})"
                t = time.perf_counter()
                res = run_baseline(method, xtr, ytr, xte, yte, sfreq=sfreq, n_classes=2, seeds=seeds[:1],
                                   groups_train=gtr, groups_test=gte, align=align, C="cv")
                timings[name] = time.perf_counter() - t
                arms[name] = res
                per_subject[name] = _baseline_per_subject(res.pop("proba"), yte, gte)

    results = {"split": split, "seeds": seeds, "args": {k: str(v) for k, v in vars(args).items()},
               "timings_s": timings, "machine": machine(), "per_subject_balanced_accuracy": per_subject,
               "arms": {k: {"aggregate": v["aggregate"], "per_seed": v["per_seed"],
                            "seed_ensemble": v.get("seed_ensemble"),
                            "protocol": v.get("protocol") or v.get("provenance", {}).get("align"),
                            "C": v.get("provenance", {}).get("C")} for k, v in arms.items()}}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

    which = "test" if split == "test" else "**validation** (test subjects 32-35 not in the folder; optimistic)"
    lines = [
        "## MentalArithmetic (EEGMAT) reproduction", "",
        f"Split: {which}. Seeds {seeds} for the networks (the baselines are deterministic: one run); mean ± std "
        f"(ddof 0) over seeds, in percent. Model: `{args.preset}` {overrides or ''}; pretraining "
        f"{args.pretrain_steps} AAMP steps × batch {args.pretrain_batch} on the available EEGMMIDB runs (paper: "
        f"2,190 h, 40 epochs), continued pretraining {args.continue_steps} steps on EEGMMIDB + the EEGMAT training "
        f"recordings; fine-tuning up to {args.epochs} epochs (`neuript finetune` defaults otherwise; 'recipe' "
        f"arms: {', '.join(f'{k}={v}' for k, v in recipe.items())}), early "
        "stopping on validation balanced accuracy. Baselines: C chosen by GroupKFold over the training subjects. "
        "'Aligned' arms are transductive (each evaluated subject's own unlabeled windows); the paper's protocol "
        "is the unaligned one.", "",
        "| model | balanced accuracy | AUC-PR | AUROC | wall time |", "|---|---:|---:|---:|---:|",
    ]
    for name, res in arms.items():
        lines.append(f"| {name} | {_fmt(res['aggregate'])} | {timings.get(name, 0):.0f} s |")
        ens = res.get("seed_ensemble")
        if ens:  # the seeds' probabilities averaged per window: one value, no spread
            lines.append(f"| {name}, ensemble of {ens['n_seeds']} seeds | " + " | ".join(
                "n/a" if ens["metrics"].get(m) is None else f"{100 * ens['metrics'][m]:.2f}" for m in METRICS)
                + " | |")
    for name, vals in PAPER.items():
        lines.append(f"| {name} | " + " | ".join(f"{vals[m]:.2f}" for m in METRICS) + " | |")
    subjects = sorted({s for d in per_subject.values() for s in d})
    if subjects:
        lines += ["", "Per-subject balanced accuracy (networks: mean over seeds):", "",
                  "| model | " + " | ".join(subjects) + " |", "|---|" + "---:|" * len(subjects)]
        for name, d in per_subject.items():
            lines.append(f"| {name} | " + " | ".join("n/a" if d.get(s) is None else f"{100 * d[s]:.1f}"
                                                     for s in subjects) + " |")
    lines += ["", f"Command: `python -m benchmarks.mental_arithmetic {' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip(),
              f"Machine: {machine()}.", f"Total {time.perf_counter() - t0:.0f} s. Results: `{out / 'results.json'}`."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("mental_arithmetic", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
