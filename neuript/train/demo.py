"""The end-to-end demo on the bundled sample (``neuript demo``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["run_demo"]


def run_demo(out: str | Path, *, pretrain_steps: int = 10, finetune_epochs: int = 3, seeds: Sequence[int] = (0,),
             n_jobs: int = 2, log: Callable[[str], None] = print) -> dict[str, Path]:
    """prepare → pretrain (AAMP, tiny) → fine-tune → evaluate → predict; returns the paths it produced."""
    from neuript.data.recipes import get_recipe
    from neuript.data.sample import sample_path
    from neuript.data.prepare import format_info, prepare_store, store_info
    from neuript.train.finetune import FinetuneConfig, finetune
    from neuript.inference.predict import predict_file
    from neuript.train.pretrain import PretrainConfig, pretrain

    import time

    t0 = time.perf_counter()
    _log = log

    def log(msg: str) -> None:  # every step line says when it started
        _log(f"{msg}  [dim](t = {time.perf_counter() - t0:.0f} s)[/]" if msg.startswith("[bold]") else msg)

    out = Path(out)
    stores = out / "stores"
    mmidb_src, eegmat_src = sample_path("eegmmidb"), sample_path("eegmat")

    log("[bold]1/5 prepare[/]: bundled EEGMMIDB (pretraining) and EEGMAT (rest vs mental arithmetic)")
    # The paper's 100 µV rule keeps only ~40 of the sample's windows (eye blinks); the demo keeps all of them.
    prepare_store(get_recipe("eegmmidb", reject_uv=None), source=mmidb_src, out=stores / "eegmmidb", n_jobs=n_jobs)
    prepare_store(get_recipe("eegmat"), source=eegmat_src, out=stores / "eegmat", n_jobs=n_jobs)
    log(format_info(store_info(stores / "eegmat")))

    log(f"[bold]2/5 pretrain[/]: AAMP masked reconstruction, neuript_tiny, {pretrain_steps} steps")
    pt = pretrain(PretrainConfig(stores=[str(stores / "eegmmidb")], out=str(out / "pretrain"), preset="neuript_tiny",
                                 epochs=1000, max_steps=pretrain_steps, batch_size=4, lr=1e-3, precision="auto",
                                 checkpoint_every=max(pretrain_steps // 2, 1), seed=520),
                  resume=(out / "pretrain" / "checkpoint").exists())

    log(f"[bold]3/5 fine-tune[/]: IILP head, balanced loss, early stopping, seeds {list(seeds)}")
    ft_dir = out / "finetune"
    finetune(FinetuneConfig(stores=[str(stores / "eegmat")], out=str(ft_dir), pretrained=str(pt),
                            epochs=finetune_epochs, batch_size=16, seeds=list(seeds), patience=4,
                            train_crop_s=2.5,
                            precision="auto"))

    log("[bold]4/5 evaluate[/]")
    report = json.loads((ft_dir / "report.json").read_text())
    log((ft_dir / "report.md").read_text().split("## Provenance")[0].rstrip())

    log("[bold]5/5 predict[/]: per-window probabilities for one held-out recording")
    val_file = _held_out_file(eegmat_src, stores / "eegmat", split=report.get("split", "val"))
    pred = predict_file(val_file, ft_dir, out=out / "predictions" / f"{val_file.stem}.predictions.csv")
    return {
        "report (markdown)": ft_dir / "report.md",
        "report (json)": ft_dir / "report.json",
        "confusion matrix": ft_dir / "confusion_matrix.png",
        "ROC / PR curves": ft_dir / "roc.png",
        "reconstruction plot": Path(pt) / "reconstruction.png",
        "pretraining log": Path(pt) / "log.csv",
        "fine-tuned checkpoint": ft_dir / f"seed{seeds[0]}" / "model",
        "predictions": pred,
    }


def _held_out_file(source: Path, store: Path, *, split: str) -> Path:
    from neuript.data.store import WindowStore

    st = WindowStore.open(store)
    w = st.windows
    rec = w.loc[w["split"] == split, "recording"]
    if len(rec) == 0:
        rec = w["recording"]
    meta = st.recording_meta(rec.iloc[0])
    return Path(meta.get("path") or next(source.glob(f"{rec.iloc[0]}*")))
