"""`neuript pretrain | finetune | evaluate | baseline | predict | embed` — thin wrappers over :mod:`neuript.train`
and :mod:`neuript.evaluate`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def _parse_overrides(items: list[str] | None) -> dict:
    """``["dropout=0.0", "experts=[0,0,2]"]`` → ``{"dropout": 0.0, "experts": [0, 0, 2]}`` (values parsed as JSON)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--model-set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds expects comma-separated integers like 0,1,2; got {text!r}") from None


def pretrain_cmd(
    stores: list[Path] = typer.Argument(..., help="Window stores written by `neuript prepare` (several allowed)."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out", "-o", help="Run directory."),
    preset: str = typer.Option("neuript_tiny", help="Model size: neuript_tiny, neuript_small, neuript_base (paper)."),
    model_set: Optional[list[str]] = typer.Option(None, "--model-set", help="Override a model hyperparameter, KEY=VALUE (repeatable)."),
    masking: str = typer.Option("aamp", help="aamp (amplitude-aware, paper) or random."),
    epochs: int = typer.Option(40, help="Epochs over the training windows."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimiser steps (also sizes the LR schedule)."),
    batch_size: int = typer.Option(480, help="Global batch size (split over processes under torchrun)."),
    lr: float = typer.Option(3e-4, help="OneCycle maximum learning rate."),
    weight_decay: float = typer.Option(5e-3, help="AdamW weight decay."),
    grad_clip: float = typer.Option(100.0, help="Gradient-norm clip."),
    aux_weight: float = typer.Option(0.8, help="Weight of the MoE auxiliary losses."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast on GPUs and on CPUs with native bf16, else fp32), bf16 or fp32."),
    seed: int = typer.Option(520, help="Random seed."),
    split: str = typer.Option("all", help="Store split(s) to train on, comma-separated ('all' = every window; "
                              "'train' keeps a labelled store's validation and test recordings out)."),
    init: Optional[Path] = typer.Option(None, help="Continue from this pretraining run (or its model/): e.g. "
                                        "adapt a pretrained encoder to your own unlabeled recordings."),
    val_fraction: float = typer.Option(0.05, help="Recordings held out for the validation loss when the stores have no 'val' split."),
    num_workers: int = typer.Option(0, help="DataLoader worker processes."),
    checkpoint_every: int = typer.Option(200, help="Steps between resumable checkpoints."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
    tensorboard: bool = typer.Option(False, help="Also log to TensorBoard (needs the tensorboard package)."),
    micro_batch: Optional[int] = typer.Option(
        None, help="Accumulate gradients over micro-batches of this size per process (less memory, same batch)."),
    optimizer_state: str = typer.Option(
        "fp32", help="AdamW moments in fp32, or bf16 (stochastic rounding; half the optimizer memory)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
) -> None:
    """Masked pretraining (AAMP by default) over one or many stores. Under `torchrun` it runs distributed (DDP)."""
    from neuript.train.pretrain import PretrainConfig, pretrain

    _check_pretrain_options(masking=masking, precision=precision, epochs=epochs, max_steps=max_steps,
                            batch_size=batch_size, micro_batch=micro_batch, checkpoint_every=checkpoint_every,
                            lr=lr, init=init)
    cfg = PretrainConfig(
        stores=[str(s) for s in stores], out=str(out), preset=preset, model_overrides=_parse_overrides(model_set),
        masking=masking, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, grad_clip=grad_clip, aux_weight=aux_weight, precision=precision, seed=seed,
        split=split, val_fraction=val_fraction, num_workers=num_workers, checkpoint_every=checkpoint_every, device=device,
        tensorboard=tensorboard, micro_batch_size=micro_batch, optimizer_state=optimizer_state,
        init=str(init) if init else None,
    )
    run = pretrain(cfg, resume=resume)
    console.print(f"[green]pretraining done[/]: model in {run / 'model'}, log {run / 'log.csv'}")


def _check_pretrain_options(*, masking, precision, epochs, max_steps, batch_size, micro_batch, checkpoint_every,
                            lr, init) -> None:
    """Option values `neuript pretrain` cannot run with, refused before any data is read (one line each)."""
    from neuript.runtime import check_choice, check_positive, check_precision

    check_choice("masking", masking, ("aamp", "random"))
    check_precision(precision)
    check_positive("epochs", epochs, integer=True)
    check_positive("max-steps", max_steps, integer=True, allow_none=True)
    check_positive("batch-size", batch_size, integer=True)
    check_positive("micro-batch", micro_batch, integer=True, allow_none=True)
    check_positive("checkpoint-every", checkpoint_every, integer=True)
    check_positive("lr", lr)
    if init is not None and not Path(init).exists():
        raise FileNotFoundError(f"--init {init}: no such pretraining run. Point --init at the run directory written "
                                "by `neuript pretrain` (or its model/ folder)")


def finetune_cmd(
    stores: list[Path] = typer.Argument(..., help="Labelled window store(s) with train/val(/test) splits."),
    out: Path = typer.Option(Path("runs/finetune"), "--out", "-o", help="Run directory."),
    pretrained: Optional[Path] = typer.Option(None, help="Pretraining run (or its model/ folder); omit to train from scratch."),
    preset: str = typer.Option("neuript_tiny", help="Model size when training from scratch."),
    model_set: Optional[list[str]] = typer.Option(None, "--model-set", help="Override a model hyperparameter, KEY=VALUE (repeatable)."),
    groups: str = typer.Option("functional", help="IILP lobe groups: functional, hemispheres, sagittal, coronal, mean."),
    loss: str = typer.Option("balanced", help="balanced (prior-shifted sigmoids, spec §5), balanced_softmax "
                             "(logit-adjusted softmax) or ce."),
    epochs: int = typer.Option(30, help="Maximum epochs."),
    batch_size: int = typer.Option(16, help="Windows per optimizer step (small labelled sets need steps more than "
                                   "large batches)."),
    micro_batch: Optional[int] = typer.Option(
        None, help="Accumulate gradients over micro-batches of this size (less memory, same batch size)."),
    optimizer_state: str = typer.Option(
        "fp32", help="AdamW moments in fp32, or bf16 (stochastic rounding; half the optimizer memory)."),
    lr: Optional[float] = typer.Option(
        None, help="OneCycle maximum learning rate of the encoder (default: 1e-3 for d_model <= 64, 3e-4 up to 256, "
        "1e-4 above)."),
    align: str = typer.Option("none", help="Label-free per-subject alignment: none (paper), channel "
                              "(per-channel standardisation) or euclidean (Euclidean alignment); transductive."),
    align_by: str = typer.Option("subject", help="Alignment group: subject or recording."),
    preemphasis: float = typer.Option(0.0, help="Pre-emphasis x[t] - a*x[t-1] of the input, a in [0, 1] (0: off, "
                                      "the paper's input; 0.9 tilts the 1/f spectrum toward alpha/beta)."),
    pool: str = typer.Option("mean", help="IILP statistics over time: mean (paper) or meanstd (mean and log std)."),
    feature_norm: str = typer.Option("none", help="Standardise the pooled features per subject or recording "
                                     "(label-free; transductive at test time) before the linear head; none: paper."),
    feature_norm_windows: int = typer.Option(24, help="With --feature-norm: windows per training subject for its "
                                             "statistics, drawn afresh every epoch."),
    head_lr: Optional[float] = typer.Option(None, help="Learning rate of the head (default: --lr)."),
    weight_decay: float = typer.Option(0.05, help="AdamW weight decay."),
    freeze_epochs: int = typer.Option(0, help="Train only the head for this many first epochs."),
    train_crop: Optional[float] = typer.Option(None, help="Train on random crops of this many seconds of each "
                                               "window (time-shift augmentation, cheaper steps); evaluation "
                                               "sees whole windows."),
    patience: int = typer.Option(8, help="Early stopping patience (epochs) on validation balanced accuracy."),
    seeds: str = typer.Option("0", help="Comma-separated seeds, one model each, e.g. 0,1,2."),
    cv: Optional[str] = typer.Option(
        None, "--cv", help="Subject-wise cross-validation instead of the stores' fixed split: loso (leave one "
        "subject out) or kfold:K, over the train + val subjects (all labelled subjects when the stores have no "
        "split); one fine-tuning per fold and seed in OUT/fold-XX/."),
    cv_val_fraction: float = typer.Option(
        0.2, help="With --cv: share of each fold's training subjects held out for early stopping (at least one)."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast on GPUs and on CPUs with native bf16, else fp32), bf16 or fp32."),
    num_workers: int = typer.Option(0, help="DataLoader worker processes."),
    device: str = typer.Option("auto", help="auto, cpu, cuda ..."),
    tensorboard: bool = typer.Option(False, help="Also log to TensorBoard (needs the tensorboard package); CSV logs "
                                                 "(seed*/log.csv per step, history.csv per epoch) are always written."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run in --out that was fine-tuned on other "
                                                              "data or settings (refused otherwise)."),
) -> None:
    """Fine-tune the IILP classifier (from a pretrained run or from scratch), then evaluate it."""
    from neuript.train.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        stores=[str(s) for s in stores], out=str(out), pretrained=str(pretrained) if pretrained else None,
        preset=preset, model_overrides=_parse_overrides(model_set), groups=groups, loss=loss, epochs=epochs,
        batch_size=batch_size, lr=lr, head_lr=head_lr, weight_decay=weight_decay, freeze_epochs=freeze_epochs,
        train_crop_s=train_crop,
        patience=patience, seeds=_seeds(seeds), precision=precision, num_workers=num_workers, device=device,
        micro_batch_size=micro_batch, optimizer_state=optimizer_state, align=align, align_by=align_by,
        preemphasis=preemphasis, pool=pool, feature_norm=feature_norm, feature_norm_windows=feature_norm_windows,
        cv=cv, cv_val_fraction=cv_val_fraction, tensorboard=tensorboard, overwrite=overwrite,
    )
    run = finetune(cfg)
    models = f"{run}/fold-*/seed*/model" if cv else f"{run}/seed*/model"
    console.print(f"[green]fine-tuning done[/]: {run}/report.md, models in {models}")


def evaluate_cmd(
    run: Path = typer.Argument(..., help="Fine-tuning run directory."),
    split: Optional[str] = typer.Option(None, help="Split to evaluate (default: test, or val if test is empty)."),
    store: Optional[list[Path]] = typer.Option(None, "--store", help="Evaluate on these stores instead of the run's."),
    baseline: Optional[list[Path]] = typer.Option(
        None, "--baseline", help="A `neuript baseline` result (JSON) to add as a row of the report; it must be "
        "scored on the same windows (repeatable; RUN/baseline-*.json files are added automatically)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda ..."),
) -> None:
    """Balanced accuracy, AUC-PR/AUROC (binary) or kappa/weighted F1 (multi-class), mean ± std over seeds
    (over folds and seeds for a --cv run)."""
    from neuript.inference.evaluate_run import evaluate_run

    res = evaluate_run(run, split=split, stores=[str(s) for s in store] if store else None, device=device,
                       baselines=baseline)
    console.print(Path(res["files"]["report_md"]).read_text())
    for name, path in res["files"].items():
        console.print(f"  {name}: {path}")


def baseline_cmd(
    stores: list[Path] = typer.Argument(..., help="Labelled window store(s), one montage."),
    method: str = typer.Option("bandpower", help="bandpower (log band power + LR) or riemann (tangent space + LR)."),
    align: str = typer.Option("none", help="none (paper), channel, euclidean (per-subject signal alignment) or "
                              "features (per-subject feature standardisation); transductive."),
    c: str = typer.Option("cv", "--C", help="Logistic-regression C, or cv: chosen by GroupKFold over the "
                          "training subjects."),
    cv: Optional[str] = typer.Option(None, "--cv", help="loso or kfold:K: the folds of `neuript finetune --cv` "
                                     "(default: the stores' fixed split)."),
    cv_val_fraction: float = typer.Option(0.2, help="As for `neuript finetune --cv` (recorded with the folds)."),
    split: Optional[str] = typer.Option(None, help="Fixed split: the split to score (default: test, or val if "
                                        "test is empty)."),
    seeds: str = typer.Option("0", help="Comma-separated seeds (the baselines are deterministic)."),
    out: Path = typer.Option(Path("runs/baselines"), "--out", "-o", help="Folder of the result JSON; a fine-tuning "
                             "run's folder adds it to that run's report."),
) -> None:
    """Classical baseline (band power or Riemann tangent space) through the fixed split or the --cv folds."""
    from neuript._atomic import atomic_write_text, to_jsonable
    from neuript.evaluate.baseline_run import baseline_filename, format_baseline_table, run_store_baseline

    if c == "cv":
        C: float | str = "cv"
    else:
        try:
            C = float(c)
        except ValueError:
            raise typer.BadParameter(f"--C expects a positive number or cv; got {c!r}") from None
    doc = run_store_baseline([str(s) for s in stores], method=method, align=align, C=C, cv=cv, split=split,
                             seeds=_seeds(seeds), cv_val_fraction=cv_val_fraction)
    path = atomic_write_text(Path(out) / baseline_filename(method, align),
                             json.dumps(to_jsonable(doc), indent=2, allow_nan=False) + "\n")
    typer.echo(format_baseline_table(doc))
    console.print(f"[green]baseline[/]: {path} (add it to a run's report: neuript evaluate RUN --baseline {path})",
                  highlight=False)


# Options shared by `predict` and `embed` (declared once; typer reads them from the annotations).
RecordingArg = Annotated[Path, typer.Argument(help="Recording (EDF, BDF, FIF, EEGLAB .set, BrainVision .vhdr).")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model directory (fine-tuning run, one seed's model/ "
                                                                "folder, save_pretrained output) or a Hugging Face Hub id.")]
StrideOpt = Annotated[Optional[float], typer.Option(help="Window stride in seconds (default: the window length).")]
AllowMissingOpt = Annotated[bool, typer.Option(
    "--allow-missing", help="Interpolate electrodes the model needs but the file lacks (spherical splines) "
    "instead of failing.")]
RenameOpt = Annotated[Optional[list[str]], typer.Option(
    "--rename", help="Rename a channel, OLD=NEW (repeatable), or a mapping file (.json object or two-column .csv/.tsv).")]
MaxInterpOpt = Annotated[Optional[int], typer.Option(
    "--max-interpolated", help="With --allow-missing: the most electrodes to interpolate (default: a quarter of "
    "those the model needs).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda ...")]
PrecisionOpt = Annotated[str, typer.Option(
    help="fp32 (default) or bf16: autocast, several times faster for large models on CPUs with bf16 units and on "
         "GPUs; outputs differ from fp32 by bf16 rounding (~1e-3 in probability).")]


def predict_cmd(
    file: RecordingArg,
    model: ModelOpt,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="CSV to write (default: FILE stem + .predictions.csv).")] = None,
    stride: StrideOpt = None,
    allow_missing: AllowMissingOpt = False,
    max_interpolated: MaxInterpOpt = None,
    rename: RenameOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    format: Annotated[str, typer.Option(
        "--format", help="csv (default), annotations (MNE .fif annotations for MNE's browser / EDF+ export) or "
        "bids (events.tsv)")] = "csv",
) -> None:
    """Per-window class probabilities for a recording, with the preprocessing the model was trained with."""
    from neuript.inference.predict import predict_file, summarise

    path, table = predict_file(file, model, out=out, stride_s=stride, allow_missing=allow_missing,
                               rename=_parse_rename(rename), device=device, precision=precision, fmt=format,
                               return_table=True, max_interpolated=_check_max_interp(max_interpolated))
    console.print(f"{file}: {summarise(table)}", highlight=False)
    console.print(f"[green]predictions[/]: {path}")


def embed_cmd(
    file: RecordingArg,
    model: ModelOpt,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=".npy to write (default: FILE stem + .embeddings.npy).")] = None,
    stride: StrideOpt = None,
    allow_missing: AllowMissingOpt = False,
    max_interpolated: MaxInterpOpt = None,
    rename: RenameOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Per-window embeddings (the IILP-pooled encoder features) of a recording, saved as .npy."""
    from neuript.inference.predict import embed_file

    path = embed_file(file, model, out=out, stride_s=stride, allow_missing=allow_missing,
                      rename=_parse_rename(rename), device=device, precision=precision,
                      max_interpolated=_check_max_interp(max_interpolated))
    console.print(f"[green]embeddings[/]: {path}")


def _parse_rename(items: list[str] | None) -> dict[str, str] | None:
    from neuript.electrodes import read_rename

    return read_rename(items) or None


def _check_max_interp(value: int | None) -> int | None:
    from neuript.runtime import check_positive

    check_positive("max-interpolated", value, allow_none=True, integer=True, allow_zero=True)
    return value


def register(app: typer.Typer) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app.command("pretrain")(pretrain_cmd)
    app.command("finetune")(finetune_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("baseline")(baseline_cmd)
    app.command("predict")(predict_cmd)
    app.command("embed")(embed_cmd)
