"""Per-subject feature normalisation: the classifier's pooled features standardised within each subject.

The strongest classical model on unseen EEGMAT subjects is band power with its features z-scored per subject
(docs/training.md): most of what separates subjects is an offset and a scale of every feature, which a
classifier trained on other subjects cannot know. ``neuript finetune --feature-norm subject`` gives the network the
same: before the linear layer of the IILP head, every flattened pooled feature is standardised with the mean and
standard deviation *of the window's own subject* (or recording), computed from that group's windows under the
current model, without labels.

* Training: the statistics of every training subject come from up to ``max_per_group`` of its windows (drawn
  afresh, under the current weights, at the start of every epoch).
* Validation, test, ``neuript predict``: from all windows of the subject (a new recording is its own group).

At test time this is *transductive*, as ``--align`` is: a test subject's statistics come from its unlabeled test
windows. It needs a whole recording, so a live stream cannot use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neuript.runtime import autocast

__all__ = ["FEATURE_NORMS", "STD_FLOOR", "flat_features", "stats_of", "group_keys", "group_feature_stats",
           "batch_stats"]

#: ``--feature-norm`` choices: no normalisation (the paper's head), per subject, per recording
FEATURE_NORMS = ("none", "subject", "recording")
#: added to every standard deviation: a feature that is constant within a group (a dead unit) is not blown up
STD_FLOOR = 1e-3


@torch.no_grad()
def flat_features(model, x: torch.Tensor, *, batch_size: int = 64, precision: str = "fp32") -> torch.Tensor:
    """The flattened pooled features (n, F) the head's linear layer reads, for model inputs ``x`` (n, C, T), in
    eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    device = x.device
    out = []
    for i in range(0, len(x), batch_size):
        with autocast(device, precision):
            out.append(model.forward_head(model.forward_features(x[i:i + batch_size]), pre_logits=True).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0, device=device)


def stats_of(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std + :data:`STD_FLOOR`) over the rows of ``features`` (n, F); one window gives std 0 (+ floor)."""
    mean = features.mean(0)
    std = features.std(0) if len(features) > 1 else torch.zeros_like(mean)
    return mean, std + STD_FLOOR


def group_keys(dataset, by: str) -> np.ndarray:
    """One key per item of a :class:`~neuript.data.loader.WindowDataset`: its store, dataset, subject (or
    recording, ``by="recording"``) and montage — the group whose statistics normalise it (the groups of
    ``--align-by``, :meth:`~neuript.data.loader.WindowDataset.group_keys`)."""
    if by not in FEATURE_NORMS[1:]:
        raise ValueError(f"feature normalisation groups are {FEATURE_NORMS[1:]}, got {by!r}")
    return dataset.group_keys(by)


def group_feature_stats(model, dataset, by: str, *, device: torch.device | str = "cpu", precision: str = "fp32",
                        max_per_group: int | None = None, rng: np.random.Generator | None = None,
                        batch_size: int = 64, keys: np.ndarray | None = None) -> dict[str, tuple]:
    """``{group key: (mean (F,), std (F,))}`` of the flattened pooled features of every group of ``dataset``
    (:func:`group_keys`), from all its windows or a random ``max_per_group`` of them (``rng``)."""
    keys = group_keys(dataset, by) if keys is None else keys
    device = torch.device(device)
    out: dict[str, tuple] = {}
    for key in np.unique(keys):
        ids = np.flatnonzero(keys == key)
        if max_per_group is not None and len(ids) > max_per_group:
            ids = np.sort((rng or np.random.default_rng(0)).choice(ids, max_per_group, replace=False))
        x = torch.stack([item["x"] for item in dataset.__getitems__(ids.tolist())]).to(device)
        out[str(key)] = stats_of(flat_features(model, x, batch_size=batch_size, precision=precision))
    return out


def batch_stats(stats: dict[str, tuple], keys: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window (mean, std), each (B, F), for the group keys of a batch."""
    return (torch.stack([stats[str(k)][0] for k in keys]), torch.stack([stats[str(k)][1] for k in keys]))
