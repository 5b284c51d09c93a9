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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eegmat", type=Path, default=REPO.parent / "shared" / "data" / "eegmat")
    p.add_argument("--eegmmidb", type=Path, default=REPO.parent / "shared" / "data" / "eegmmidb")
    p.add_argument("--out", type=Path, default=REPO / "neuript_runs" / "mental_arithmetic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="neuript_tiny")
    p.add_argument("--model-set", action="append", default=[], help="KEY=JSON model override (repeatable)")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--pretrain-batch", type=int, default=16)
    p.add_argument("--pretrain-reject-uv", type=float, default=None,
                   help="amplitude rejection for the pretraining windows (paper: 100; default off, see docstring)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--precision", default="bf16", help="bf16 (autocast) or fp32")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = p.parse_args(argv)

    from neuript.data.recipes import get_recipe
    from neuript.data.store import prepare_store
    from neuript.evaluate.baselines import run_baseline
    from neuript.train.finetune import FinetuneConfig, finetune
    from neuript.train.pretrain import PretrainConfig, pretrain

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    overrides = {}
    for item in args.model_set:
        k, v = item.split("=", 1)
        overrides[k] = json.loads(v)
    out = args.out
    t0 = time.perf_counter()
    timings = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), source=args.eegmat, out=out / "stores" / "eegmat", n_jobs=args.n_jobs)
        prepare_store(get_recipe("eegmmidb", reject_uv=args.pretrain_reject_uv), source=args.eegmmidb,
                      out=out / "stores" / "eegmmidb", n_jobs=args.n_jobs)
    eegmat, mmidb = out / "stores" / "eegmat", out / "stores" / "eegmmidb"
    timings["prepare_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    pt = pretrain(PretrainConfig(stores=[str(mmidb)], out=str(out / "pretrain"), preset=args.preset,
                                 model_overrides=overrides, epochs=10_000, max_steps=args.pretrain_steps,
                                 batch_size=args.pretrain_batch, lr=1e-3, precision=args.precision, seed=520,
                                 checkpoint_every=50),
                  resume=(out / "pretrain" / "checkpoint").exists())
    timings["pretrain_s"] = time.perf_counter() - t

    arms = {}
    for name, pretrained in (("NeurIPT pretrained → fine-tuned", str(pt)), ("NeurIPT from scratch", None)):
        t = time.perf_counter()
        run = finetune(FinetuneConfig(stores=[str(eegmat)], out=str(out / ("ft_pretrained" if pretrained else "ft_scratch")),
                                      pretrained=pretrained, preset=args.preset, model_overrides=overrides,
                                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                      patience=args.patience, seeds=seeds, precision=args.precision))
        timings[name] = time.perf_counter() - t
        arms[name] = json.loads((run / "report.json").read_text())

    split = next(iter(arms.values()))["split"]
    xtr, ytr, sfreq = _windows(eegmat, "train")
    xte, yte, _ = _windows(eegmat, split)
    for name, label in (("riemann", "Riemann tangent space + LR"), ("bandpower", "Band power + LR")):
        t = time.perf_counter()
        arms[label] = run_baseline(name, xtr, ytr, xte, yte, sfreq=sfreq, n_classes=2, seeds=seeds)
        timings[label] = time.perf_counter() - t

    results = {"split": split, "seeds": seeds, "args": {k: str(v) for k, v in vars(args).items()},
               "timings_s": timings, "machine": machine(),
               "arms": {k: {"aggregate": v["aggregate"], "per_seed": v["per_seed"]} for k, v in arms.items()}}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

    which = "test" if split == "test" else "**validation** (test subjects 32-35 not in the folder; optimistic)"
    lines = [
        "## MentalArithmetic (EEGMAT) reproduction", "",
        f"Split: {which}. Seeds {seeds}; mean ± std (ddof 0) over seeds, in percent. "
        f"Model: `{args.preset}` {overrides or ''}; pretraining {args.pretrain_steps} AAMP steps × batch "
        f"{args.pretrain_batch} on the available EEGMMIDB runs (paper: 2,190 h, 40 epochs); fine-tuning up to "
        f"{args.epochs} epochs, early stopping on validation balanced accuracy.", "",
        "| model | balanced accuracy | AUC-PR | AUROC | wall time |", "|---|---:|---:|---:|---:|",
    ]
    for name, res in arms.items():
        lines.append(f"| {name} | {_fmt(res['aggregate'])} | {timings.get(name, 0):.0f} s |")
    for name, vals in PAPER.items():
        lines.append(f"| {name} | " + " | ".join(f"{vals[m]:.2f}" for m in METRICS) + " | |")
    lines += ["", f"Command: `python -m benchmarks.mental_arithmetic {' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip(),
              f"Machine: {machine()}.", f"Total {time.perf_counter() - t0:.0f} s. Results: `{out / 'results.json'}`."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("mental_arithmetic", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
