"""Masked pretraining (AAMP by default) over one or many window stores.

Determinism and distribution
----------------------------
Every rank iterates the *same* montage-grouped global batches (same sampler seed and epoch), draws the masks of
the whole global batch from the same generator, and then keeps only its own contiguous slice of the batch. The
per-rank losses are means over equally sized slices, and DDP averages gradients, so a run on ``w`` processes takes
exactly the optimisation steps of a single process with the same global batch (up to floating-point reduction
order, and dropout, whose draws differ per rank). Reading the whole global batch on each rank costs a few
megabytes per step from the memory-mapped store, far below what the model consumes.

Resuming
--------
A checkpoint stores the weights, AdamW moments, OneCycle state, the loop position (epoch, batch in epoch, step),
the global torch RNG (dropout, gate noise) and the masking generator. ``resume=True`` restores all of it and skips
the batches already consumed in the interrupted epoch, so an interrupted-and-resumed run reaches the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from neuript.inference.artifacts import store_fingerprint
from neuript.model.masking import make_masker
from neuript.model.presets import build as build_preset
from neuript.runtime import autocast, fingerprint, now_iso, resolve_precision, seed_everything, versions
from neuript.train.checkpoint import has_checkpoint, load_training_state, save_training_state, write_json_atomic
from neuript.train.common import (
    DistContext, backward_in_micro_batches, check_memory_options, init_distributed, make_adamw,
)
from neuript.train.progress import Progress

log = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "pretrain"]


@dataclass
class PretrainConfig:
    """Pretraining hyperparameters. Defaults follow the paper (spec §4) except the run length.

    Parameters
    ----------
    stores
        Window stores to pretrain on (mixed montages allowed; every batch holds one montage).
    out
        Run directory (checkpoints, logs, final model).
    preset
        Model size: ``neuript_tiny``, ``neuript_small`` or ``neuript_base`` (paper).
    model_overrides
        Hyperparameters overriding the preset (e.g. ``{"dropout": 0.0}``).
    split
        Store split(s) used for training, comma-separated; ``"all"`` uses every window. With chosen splits the
        stores' validation split is not read: the monitoring loss uses ``val_fraction`` of the training
        recordings (so ``split="train"`` of a downstream store never touches its validation or test recordings).
    init
        A pretraining run (or its ``model/``) to continue from, e.g. on the user's own unlabeled recordings
        (``neuript pretrain STORE --split train --init RUN``); its shape fixes the model.
    val_split, val_fraction
        Validation windows (reconstruction loss after each epoch): the stores' ``val_split`` when it has windows,
        else ``val_fraction`` of the training recordings, held out whole (see :func:`holdout_recordings`).
    masking
        ``"aamp"`` (amplitude-aware, paper) or ``"random"``.
    mask_ratios
        Mask ratio drawn per batch from these values.
    epochs, max_steps
        Run length; ``max_steps`` (if set) stops earlier and also sizes the LR schedule.
    batch_size
        Global batch (split over ranks under torchrun; must be divisible by the world size).
    lr, weight_decay, betas, pct_start, div_factor, final_div_factor
        AdamW + OneCycle (cosine) settings.
    grad_clip
        Gradient-norm clip.
    aux_weight
        Weight of the summed MoE auxiliary losses.
    precision
        ``"auto"`` (bf16 autocast on GPUs and on CPUs with native bf16, else fp32:
        :func:`neuript.runtime.resolve_precision`), ``"bf16"`` or ``"fp32"``.
    checkpoint_every
        Steps between resumable checkpoints (one is always written at each epoch end).
    micro_batch_size
        Split each process's share of the batch into micro-batches of this size and accumulate their gradients
        before one optimizer step (lower activation memory). The update equals the full batch's when the random
        draws (dropout, gate noise, the BERT-rule random tokens) are off, except for the MoE balancing loss, which
        is computed per micro-batch (tested); with them on, the draws differ between splits, so the update is the
        same in distribution. ``None``: the whole share at once.
    optimizer_state
        ``"fp32"`` (torch's AdamW) or ``"bf16"`` (moments in bfloat16, stochastic rounding; half the optimizer
        memory — :class:`neuript.train.optim.BF16StateAdamW`).
    """

    stores: Sequence[str] = ()
    out: str = "runs/pretrain"
    preset: str = "neuript_tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    split: str = "all"
    val_split: str | None = "val"
    val_fraction: float = 0.05
    masking: str = "aamp"
    mask_ratios: tuple[float, ...] = (0.2, 0.35, 0.5)
    epochs: int = 40
    max_steps: int | None = None
    batch_size: int = 480
    lr: float = 3e-4
    weight_decay: float = 5e-3
    betas: tuple[float, float] = (0.9, 0.98)
    pct_start: float = 0.15
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    grad_clip: float = 100.0
    aux_weight: float = 0.8
    precision: str = "auto"
    seed: int = 520
    num_workers: int = 0
    checkpoint_every: int = 200
    device: str = "auto"
    tensorboard: bool = False
    plot: bool = True
    micro_batch_size: int | None = None
    optimizer_state: str = "fp32"
    init: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stores"] = [str(s) for s in self.stores]
        return d


def draw_mask(x: torch.Tensor, *, masking: str, ratios, generator: torch.Generator) -> torch.Tensor:
    """Boolean mask (B, C, T) for a whole (global) batch, computed on the CPU from ``generator`` so that it is
    the same on every rank and on every device type."""
    return make_masker(masking, ratios=ratios, generator=generator)(x.detach().cpu())


def pretrain_forward(model, x, positions, *, mask=None, masking: str = "aamp", ratios=(0.5,),
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One pretraining forward; draws a mask when none is given."""
    if mask is None:
        mask = draw_mask(x, masking=masking, ratios=ratios, generator=generator)
    return model(x, positions, mask=mask.to(x.device))


@torch.no_grad()
def plot_pretrain_example(model, dataset, path: Path, *, cfg: "PretrainConfig", device) -> Path:
    """PNG of masked vs reconstructed signals for one held-out window."""
    from neuript.data.loader import make_loader
    from neuript.evaluate.plots import plot_reconstruction

    model.eval()
    batch = next(iter(make_loader(dataset, batch_size=1, shuffle=False, seed=0)))
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    out = pretrain_forward(model, batch["x"].to(device), batch["positions"].to(device), masking=cfg.masking,
                           ratios=(max(cfg.mask_ratios),), generator=gen)
    model.train()
    return plot_reconstruction(
        batch["x"][0].numpy(), out["pred"][0].float().cpu().numpy(), out["mask"][0].cpu().numpy(), path,
        ch_names=batch["ch_names"], sfreq=dataset.sfreq,
    )


def _accumulate(ddp_model, x, pos, mask, cfg: PretrainConfig, ctx: DistContext):
    """Forward + backward of this process's share of the batch, in micro-batches of ``cfg.micro_batch_size``
    windows (validated by :func:`pretrain`), each weighted by its share; returns the (detached) loss and the
    per-term losses of the share. Under DDP, gradients are synchronised once, on the last micro-batch."""

    def loss_of(xs, ms):
        with autocast(ctx.device, cfg.precision):
            out_d = pretrain_forward(ddp_model, xs, pos, mask=ms)
            loss = out_d["recon_loss"] + cfg.aux_weight * out_d["aux_loss"]
        return loss, {k: out_d[k] for k in ("recon_loss", "aux_loss")}

    loss, terms = backward_in_micro_batches((x, mask), cfg.micro_batch_size or len(x), loss_of,
                                            no_sync=getattr(ddp_model, "no_sync", None))
    return torch.tensor(loss), {k: torch.tensor(v) for k, v in terms.items()}


def _check_memory(cfg: PretrainConfig, model, train_ds, ctx: DistContext) -> None:
    """Estimate the peak memory of a step on the widest montage (from two small forward passes) and refuse a
    run that cannot fit in this process's share of the machine."""
    from neuript.train.memory import check_training_memory, estimate_training_memory, release_freed_activations

    release_freed_activations(ctx.device, grad_checkpointing=model.encoder.grad_checkpointing)
    info = max((train_ds.montage_info(m) for m in train_ds.montages), key=lambda d: len(d["ch_names"]))
    pos = torch.as_tensor(np.asarray(info["positions"]), dtype=torch.float32, device=ctx.device)
    n_chans, n_times = len(info["ch_names"]), max(st.n_times for st in train_ds.stores)
    gen = torch.Generator().manual_seed(0)

    def loss_of(n: int) -> torch.Tensor:
        x = torch.randn(n, n_chans, n_times, device=ctx.device)
        with autocast(ctx.device, cfg.precision):
            out_d = pretrain_forward(model, x, pos, masking=cfg.masking, ratios=(max(cfg.mask_ratios),),
                                     generator=gen)
            return out_d["recon_loss"] + cfg.aux_weight * out_d["aux_loss"]

    share = cfg.batch_size // ctx.world_size
    est = estimate_training_memory(model, loss_of, batch_size=share, micro_batch_size=cfg.micro_batch_size,
                                   optimizer_state=cfg.optimizer_state, device=ctx.device)
    if ctx.is_main:
        log.info("estimated peak memory of a training step (%d channels x %d samples): %s", n_chans, n_times,
                 est.describe())
    if ctx.world_size == 1 or ctx.device.type == "cuda":  # CPU processes of one machine share its memory
        check_training_memory(est, command="neuript pretrain")
    else:
        from neuript.train.memory import available_memory

        avail = available_memory()
        check_training_memory(est, command="neuript pretrain (per process)",
                              available=None if avail is None else avail // ctx.world_size)


def _total_steps(cfg: PretrainConfig, steps_per_epoch: int) -> int:
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return max(total, 1)


def _write_log_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    keep = [r for r in rows if int(r["step"]) <= step]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(keep)


@torch.no_grad()
def _validate(model, loader, cfg: PretrainConfig, ctx: DistContext, *, max_batches: int = 50) -> float:
    """Masked-reconstruction loss on held-out windows, with a fixed masking seed (comparable across epochs)."""
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    total, n = 0.0, 0
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        x = batch["x"].to(ctx.device)
        pos = batch["positions"].to(ctx.device)
        with autocast(ctx.device, cfg.precision):
            out = pretrain_forward(model, x, pos, masking=cfg.masking, ratios=cfg.mask_ratios, generator=gen)
        total += float(out["recon_loss"].float()) * x.shape[0]
        n += x.shape[0]
    model.train()
    return total / max(n, 1)


def pretrain(cfg: PretrainConfig, *, resume: bool = False, stop_after_steps: int | None = None) -> Path:
    """Run (or resume) masked pretraining; returns the run directory.

    ``stop_after_steps`` ends the process's loop early *without* changing the schedule — it simulates an
    interruption (tests) and lets long runs be chopped into jobs that each resume the previous one.
    """
    from neuript.data.loader import WindowDataset, make_loader

    check_memory_options(micro_batch_size=cfg.micro_batch_size, optimizer_state=cfg.optimizer_state)
    from neuript.runtime import check_positive, check_precision

    check_precision(cfg.precision)
    check_positive("epochs", cfg.epochs, integer=True)  # the CLI checks these too; the Python API must as well
    check_positive("max-steps", cfg.max_steps, integer=True, allow_none=True)
    check_positive("batch-size", cfg.batch_size, integer=True)
    ctx = init_distributed(cfg.device)
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoint"
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if ctx.distributed and cfg.batch_size % ctx.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({ctx.world_size})")
    if not resume and has_checkpoint(ckpt_dir):
        raise FileExistsError(
            f"{out} already holds a pretraining checkpoint. Pass --resume to continue it, or choose another --out."
        )
    seed_everything(cfg.seed)

    splits = None if cfg.split == "all" else [p.strip() for p in cfg.split.split(",") if p.strip()]
    train_ds = WindowDataset(list(cfg.stores), split=splits)
    store_cfgs = [st.config for st in train_ds.stores]
    if len(train_ds) == 0:
        raise ValueError(f"no windows in split {cfg.split!r} of stores {list(cfg.stores)}")
    val_ds = None
    # Training on chosen splits (e.g. a downstream store's 'train'): its validation and test recordings stay
    # untouched, so the monitoring loss comes from held-out training recordings instead.
    if cfg.val_split and (splits is None or cfg.val_split in splits):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # no val split: a held-out fraction is used below
                val_ds = WindowDataset(list(cfg.stores), split=cfg.val_split)
            if len(val_ds) == 0:
                val_ds = None
        except (KeyError, ValueError):
            val_ds = None
    if val_ds is None and cfg.val_fraction > 0:
        train_ds, val_ds = holdout_recordings(train_ds, cfg.val_fraction)
    loader = make_loader(
        train_ds, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers, drop_last=True
    )
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch size {cfg.batch_size} is larger than every montage group of the training windows "
            f"({len(train_ds)} windows); lower --batch-size"
        )
    total_steps = _total_steps(cfg, steps_per_epoch)

    if cfg.init:  # continue from an earlier pretraining (its encoder and decoder); only regularisation may change
        from neuript.inference.artifacts import load_pretrained
        from neuript.model.classifier import FREE_ENCODER_SETTINGS

        fixed = set(cfg.model_overrides) - set(FREE_ENCODER_SETTINGS) - {"token_prob", "random_prob"}
        if fixed:
            raise ValueError(f"--init {cfg.init}: the model's shape comes from that run; --model-set {sorted(fixed)} "
                             "cannot change it (only dropout-like settings can)")
        model = load_pretrained(cfg.init, **cfg.model_overrides).to(ctx.device)
    else:
        model = build_preset(cfg.preset, pretrain=True, **cfg.model_overrides).to(ctx.device)
    model.train()
    _check_memory(cfg, model, train_ds, ctx)
    optimizer = make_adamw(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                           state=cfg.optimizer_state)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.lr,
        total_steps=total_steps,
        pct_start=cfg.pct_start,
        anneal_strategy="cos",
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
        cycle_momentum=False,
    )
    mask_gen = torch.Generator().manual_seed(cfg.seed)
    data_fp = fingerprint([store_fingerprint(s) for s in cfg.stores])
    run_meta = {
        "kind": "pretrain",
        "config": cfg.to_dict(),
        "model_config": dict(model.config),
        "data_fingerprint": data_fp,
        "versions": versions(), "precision_used": resolve_precision(cfg.precision, ctx.device),
        "world_size": ctx.world_size,
        "started": now_iso(),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }

    epoch, batch_in_epoch, step = 0, 0, 0
    rng_after_iter = None
    if resume and has_checkpoint(ckpt_dir):
        state = load_training_state(
            ckpt_dir, model=model, optimizer=optimizer, scheduler=scheduler, generators={"mask": mask_gen}
        )
        if state.get("data_fingerprint") != data_fp:
            raise ValueError(
                f"--resume: the stores changed since {ckpt_dir} was written (data fingerprint "
                f"{state.get('data_fingerprint')} → {data_fp}). Resume with the same stores or start a new run."
            )
        if state.get("total_steps") != total_steps:
            raise ValueError(
                f"--resume: the run length changed (total steps {state.get('total_steps')} → {total_steps}); "
                "resume with the same --epochs/--max-steps/--batch-size."
            )
        epoch, batch_in_epoch, step = state["epoch"], state["batch_in_epoch"], state["step"]
        rng_after_iter = torch.get_rng_state()
        if ctx.is_main:
            _truncate_log(out / "log.csv", step)
            log.info("resumed %s at epoch %d, batch %d, step %d", out, epoch, batch_in_epoch, step)
    if ctx.is_main:
        write_json_atomic(out / "run.json", run_meta)

    ddp_model = DistributedDataParallel(model) if ctx.distributed else model
    tb = None
    if cfg.tensorboard and ctx.is_main:
        from neuript.runtime import tensorboard_writer  # optional dependency

        tb = tensorboard_writer(out / "tensorboard")

    def checkpoint(ep: int, b: int) -> None:
        if ctx.is_main:
            save_training_state(
                ckpt_dir,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                generators={"mask": mask_gen},
                state={
                    "epoch": ep,
                    "batch_in_epoch": b,
                    "step": step,
                    "total_steps": total_steps,
                    "data_fingerprint": data_fp,
                    "config": cfg.to_dict(),
                },
            )
        ctx.barrier()

    lo = ctx.rank * (cfg.batch_size // ctx.world_size)
    hi = lo + cfg.batch_size // ctx.world_size
    progress = Progress(total=total_steps * cfg.batch_size, initial=step * cfg.batch_size, desc="pretrain",
                        unit="win", enabled=ctx.is_main)
    steps_this_process = 0
    stopped_early = False
    while step < total_steps and epoch < cfg.epochs:
        loader.batch_sampler.set_epoch(epoch)
        it = iter(loader)
        if rng_after_iter is not None:
            # DataLoader.__iter__ may draw from the global RNG; restore the checkpointed state after it.
            torch.set_rng_state(rng_after_iter)
            rng_after_iter = None
        for _ in range(batch_in_epoch):
            next(it)
        t0 = time.perf_counter()
        for batch in it:
            mask = draw_mask(batch["x"], masking=cfg.masking, ratios=cfg.mask_ratios, generator=mask_gen)
            x = batch["x"][lo:hi].to(ctx.device, non_blocking=True)
            mask = mask[lo:hi].to(ctx.device)
            pos = batch["positions"].to(ctx.device)
            optimizer.zero_grad(set_to_none=True)
            loss, out_d = _accumulate(ddp_model, x, pos, mask, cfg, ctx)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            batch_in_epoch += 1
            steps_this_process += 1
            progress.update(cfg.batch_size, loss=float(loss.detach()))
            if ctx.is_main:
                dt = time.perf_counter() - t0
                row = {
                    "step": step,
                    "epoch": epoch,
                    "loss": float(loss.detach()),
                    "recon_loss": float(out_d["recon_loss"].detach()),
                    "aux_loss": float(out_d["aux_loss"].detach()),
                    "grad_norm": float(grad_norm),
                    "lr": scheduler.get_last_lr()[0],
                    "windows_per_s": cfg.batch_size / dt if dt > 0 else math.nan,
                    "val_recon_loss": "",
                }
                _write_log_row(out / "log.csv", row)
                if tb is not None:
                    for k in ("loss", "recon_loss", "aux_loss", "lr", "grad_norm"):
                        tb.add_scalar(f"train/{k}", row[k], step)
            t0 = time.perf_counter()
            if step % cfg.checkpoint_every == 0 and step < total_steps:
                checkpoint(epoch, batch_in_epoch)
            if step >= total_steps:
                break
            if stop_after_steps is not None and steps_this_process >= stop_after_steps:
                stopped_early = True
                break
        if stopped_early:
            checkpoint(epoch, batch_in_epoch)
            break
        epoch += 1
        batch_in_epoch = 0
        val = _validate(model, val_loader(val_ds, cfg), cfg, ctx) if val_ds is not None else math.nan
        val = ctx.all_reduce_mean(val)
        if ctx.is_main:
            _write_log_row(out / "log.csv", {
                "step": step, "epoch": epoch - 1, "loss": "", "recon_loss": "", "aux_loss": "", "grad_norm": "",
                "lr": scheduler.get_last_lr()[0], "windows_per_s": "", "val_recon_loss": val,
            })
            if tb is not None and not math.isnan(val):
                tb.add_scalar("val/recon_loss", val, step)
            progress.write(f"epoch {epoch - 1}: val reconstruction loss {val:.4f}")
        checkpoint(epoch, 0)
    progress.close()

    in_sync = _ranks_in_sync(model, ctx)
    if not stopped_early and ctx.is_main:
        model.save_pretrained(out / "model", kind="pretrain",
                              preprocessing=store_cfgs[0].get("preprocess") if store_cfgs else None,
                              provenance={**run_meta, "finished": now_iso(), "step": step, "ranks_in_sync": in_sync,
                                          "store_configs": store_cfgs})
        if cfg.plot:
            try:
                src = val_ds if val_ds is not None else train_ds
                plot_pretrain_example(model, src, out / "reconstruction.png", cfg=cfg, device=ctx.device)
            except Exception as err:  # a plot must never fail a finished run
                log.warning("could not draw the reconstruction plot: %s", err)
    if tb is not None:
        tb.close()
    ctx.barrier()
    return out


def holdout_recordings(ds, fraction: float):
    """Split a dataset by recording (never inside one): ``round(fraction * n)`` recordings (at least one, when
    there are two or more) go to validation, chosen by a hash of their ids — stable across runs, machines and
    the order the files were found in. Returns ``(train, val)``; ``val`` is None with fewer than 2 recordings."""
    import hashlib

    import numpy as np

    w = ds.windows
    rec = (w["store"].astype(str) + ":" + w["recording"].astype(str)).to_numpy()
    names = sorted(set(rec), key=lambda r: hashlib.sha1(r.encode()).hexdigest())
    if len(names) < 2:
        return ds, None
    n_val = min(len(names) - 1, max(1, round(fraction * len(names))))
    is_val = np.isin(rec, names[:n_val])
    return ds.select(np.flatnonzero(~is_val)), ds.select(np.flatnonzero(is_val))


def _ranks_in_sync(model: torch.nn.Module, ctx: DistContext) -> bool:
    """True when every rank holds bit-identical parameters (always true in a single process)."""
    if not ctx.distributed:
        return True
    import torch.distributed as dist

    vec = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    ref = vec.clone()
    dist.broadcast(ref, src=0)
    diff = (vec - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return bool(diff.item() == 0.0)


def val_loader(val_ds, cfg: PretrainConfig):
    from neuript.data.loader import make_loader

    return make_loader(val_ds, batch_size=min(cfg.batch_size, 64), shuffle=False, seed=cfg.seed, num_workers=0)
