"""Fine-tuning with the IILP head: balanced loss, encoder freeze, early stopping, several seeds.

Each seed writes ``OUT/seed<k>/model`` (the best checkpoint on the validation split, safetensors + JSON with
everything :mod:`neuript.train.inference` needs to run it on a new recording) and its per-window predictions.
``OUT/results.json`` collects the per-seed metrics; :func:`neuript.train.evaluation.evaluate_run` turns them into
the report.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from neuript.train import modeling
from neuript.train.checkpoint import write_json_atomic
from neuript.train.common import (
    autocast, backward_in_micro_batches, check_memory_options, make_adamw, now_iso, resolve_device, seed_everything,
    versions,
)
from neuript.train.inference import predict_dataset
from neuript.train.progress import Progress

log = logging.getLogger(__name__)

__all__ = ["FinetuneConfig", "finetune", "BalancedLoss", "accumulate_gradients"]


@dataclass
class FinetuneConfig:
    """Fine-tuning hyperparameters.

    Parameters
    ----------
    stores
        Window stores holding labelled ``train``/``val``(/``test``) splits, all of one montage.
    out
        Run directory.
    pretrained
        A pretraining run directory (or its ``model/`` export) to start from; ``None`` trains from scratch.
    preset, model_overrides
        Model size when training from scratch (ignored for the encoder shape when ``pretrained`` is given,
        except for dropout-like overrides).
    groups
        Lobe grouping of the IILP head: ``functional`` (paper), ``hemispheres``, ``sagittal``, ``coronal``, ``mean``.
    loss
        ``"balanced"``: logit-adjusted cross-entropy (logits shifted by ``tau * log prior`` during training, with
        label smoothing; spec §5) — or ``"ce"``: plain cross-entropy.
    freeze_epochs
        Epochs at the start during which only the head trains.
    patience
        Early stopping: epochs without improvement of validation balanced accuracy.
    seeds
        One model per seed; metrics are reported as mean ± std over seeds.
    micro_batch_size
        Split every batch into micro-batches of this size and accumulate their gradients before one optimizer
        step (lower activation memory). The update equals the full batch's when dropout and gate noise are off,
        except for the MoE balancing loss, which is computed per micro-batch (tested); with them on, their
        random draws differ between splits, so the update is the same in distribution. ``None``: the whole
        batch at once.
    optimizer_state
        ``"fp32"`` (torch's AdamW) or ``"bf16"``: the AdamW moments stored in bfloat16 with stochastic rounding
        (:class:`neuript.train.optim.BF16StateAdamW`; half the optimizer memory, same update in expectation).
    """

    stores: Sequence[str] = ()
    out: str = "runs/finetune"
    pretrained: str | None = None
    preset: str = "neuript_tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    groups: str = "functional"
    loss: str = "balanced"
    tau: float = 1.0
    label_smoothing: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    head_lr: float | None = None
    weight_decay: float = 0.05
    pct_start: float = 0.1
    freeze_epochs: int = 0
    patience: int = 8
    grad_clip: float = 5.0
    aux_weight: float = 0.8
    seeds: Sequence[int] = (0,)
    precision: str = "bf16"
    num_workers: int = 0
    device: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    max_train_batches: int | None = None
    micro_batch_size: int | None = None
    optimizer_state: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stores"] = [str(s) for s in self.stores]
        d["seeds"] = list(self.seeds)
        return d


def accumulate_gradients(
    model: torch.nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    micro_batch_size: int,
    aux_weight: float,
    device: torch.device,
    precision: str,
) -> float:
    """Backpropagate ``loss_fn(model(x), y) + aux_weight * MoE aux loss`` over micro-batches of
    ``micro_batch_size`` windows, each weighted by its share of the batch, so the accumulated gradients are those
    of the batch mean (the MoE balancing loss is per micro-batch). Returns the batch loss."""

    def loss_of(xs, ys):
        with autocast(device, precision):
            return loss_fn(model(xs), ys) + aux_weight * modeling.aux_loss_of(model), {}

    return backward_in_micro_batches((x, y), micro_batch_size, loss_of)[0]


class BalancedLoss(torch.nn.Module):
    """Logit-adjusted cross-entropy (Menon et al., 2021) with label smoothing.

    During training the logits are shifted by ``tau * log(prior)`` so that the raw logits used at inference
    estimate balanced (prior-free) class scores. For a single binary logit this is the balanced BCE of the
    paper: the logit is shifted by ``tau * log(pi / (1 - pi))``.
    """

    def __init__(self, prior: np.ndarray, *, tau: float = 1.0, label_smoothing: float = 0.0, binary: bool):
        super().__init__()
        prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-6, 1.0)
        prior = prior / prior.sum()
        self.binary = binary
        self.label_smoothing = label_smoothing
        if binary:
            shift = torch.tensor([tau * math.log(prior[1] / prior[0])], dtype=torch.float32)
        else:
            shift = torch.as_tensor(tau * np.log(prior), dtype=torch.float32)
        self.register_buffer("shift", shift)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float() + self.shift
        if self.binary:
            y = target.float()
            if self.label_smoothing:
                y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y)
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


def _set_encoder_trainable(model: torch.nn.Module, trainable: bool) -> None:
    head = set(id(p) for p in model.final_layer.parameters())
    for p in model.parameters():
        if id(p) not in head:
            p.requires_grad_(trainable)


def _train_one_seed(cfg: FinetuneConfig, seed: int, data: modeling.FinetuneData, device: torch.device,
                    out: Path) -> dict[str, Any]:
    from neuript.data.loader import make_loader
    from neuript.evaluate.metrics import compute_metrics

    seed_everything(seed)
    if cfg.loss not in ("balanced", "ce"):
        raise ValueError(f"--loss must be 'balanced' or 'ce', got {cfg.loss!r}")
    model = modeling.build_classifier_for(cfg, data).to(device)
    # plain cross-entropy = the balanced loss without the prior shift (tau = 0)
    loss_fn = BalancedLoss(data.prior, tau=cfg.tau if cfg.loss == "balanced" else 0.0,
                           label_smoothing=cfg.label_smoothing, binary=data.n_outputs == 1).to(device)

    loader = make_loader(data.train, batch_size=cfg.batch_size, shuffle=True, seed=seed,
                         num_workers=cfg.num_workers, drop_last=len(data.train) > cfg.batch_size)
    steps_per_epoch = len(loader) if cfg.max_train_batches is None else min(len(loader), cfg.max_train_batches)
    micro = cfg.micro_batch_size or cfg.batch_size  # validated by finetune()
    head_params = list(model.final_layer.parameters())
    head_ids = set(id(p) for p in head_params)
    body_params = [p for p in model.parameters() if id(p) not in head_ids]
    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr
    optimizer = make_adamw(
        [{"params": body_params, "lr": cfg.lr}, {"params": head_params, "lr": head_lr}],
        lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), state=cfg.optimizer_state,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[cfg.lr, head_lr], total_steps=max(cfg.epochs * steps_per_epoch, 1),
        pct_start=cfg.pct_start, anneal_strategy="cos", cycle_momentum=False,
    )

    best = {"score": -math.inf, "epoch": -1, "state": None}
    history = []
    bad_epochs = 0
    progress = Progress(total=cfg.epochs * steps_per_epoch * cfg.batch_size, desc=f"finetune seed {seed}")
    for epoch in range(cfg.epochs):
        _set_encoder_trainable(model, epoch >= cfg.freeze_epochs)
        model.train()
        loader.batch_sampler.set_epoch(epoch)
        losses = []
        for b, batch in enumerate(loader):
            if b >= steps_per_epoch:
                break
            x = batch["x"].to(device)
            y = batch["label"].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_gradients(model, loss_fn, x, y, micro_batch_size=micro, aux_weight=cfg.aux_weight,
                                        device=device, precision=cfg.precision)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss)
            progress.update(x.shape[0], loss=losses[-1])
        val_probs, val_labels, _ = predict_dataset(model, data.val, batch_size=cfg.batch_size, device=device,
                                                   precision=cfg.precision)
        val_metrics = compute_metrics(val_labels, val_probs, n_classes=data.n_classes)
        score = val_metrics["balanced_accuracy"]
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                        "val_balanced_accuracy": score, "lr": scheduler.get_last_lr()[0]})
        progress.write(f"seed {seed} epoch {epoch}: train loss {history[-1]['train_loss']:.4f}  "
                       f"val balanced accuracy {score:.4f}")
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                progress.write(f"seed {seed}: early stop at epoch {epoch} (best epoch {best['epoch']})")
                break
    progress.close()
    model.load_state_dict(best["state"])
    seed_dir = out / f"seed{seed}"
    modeling.save_classifier(model, seed_dir / "model", meta={
        "kind": "finetune",
        "seed": seed,
        "best_epoch": best["epoch"],
        "best_val_balanced_accuracy": best["score"],
        "label_names": data.label_names,
        "ch_names": data.ch_names,
        "positions": np.asarray(data.positions).tolist(),
        "sfreq": data.sfreq,
        "n_times": data.n_times,
        "preprocessing": data.preprocessing,
        "transform": "alaw",
        "config": cfg.to_dict(),
        "data_fingerprint": data.fingerprint,
        "versions": versions(),
        "saved": now_iso(),
    })
    write_json_atomic(seed_dir / "history.json", history)
    return {"seed": seed, "best_epoch": best["epoch"], "best_val_balanced_accuracy": best["score"]}


def finetune(cfg: FinetuneConfig) -> Path:
    """Fine-tune one model per seed and evaluate them; returns the run directory."""
    from neuript.train.evaluation import evaluate_run

    check_memory_options(micro_batch_size=cfg.micro_batch_size, optimizer_state=cfg.optimizer_state)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = modeling.load_finetune_data(cfg)
    write_json_atomic(out / "run.json", {
        "kind": "finetune",
        "config": cfg.to_dict(),
        "data_fingerprint": data.fingerprint,
        "n_windows": {"train": len(data.train), "val": len(data.val), "test": len(data.test) if data.test else 0},
        "label_names": data.label_names,
        "versions": versions(),
        "started": now_iso(),
    })
    for seed in cfg.seeds:
        done = out / f"seed{seed}" / "model"
        if modeling.is_saved_model(done):
            log.info("seed %d already finished in %s; skipping (delete it to retrain)", seed, done)
            continue
        _train_one_seed(cfg, seed, data, device, out)
    evaluate_run(out, device=cfg.device)
    return out

