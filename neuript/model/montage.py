"""Resolve electrode positions and lobe groups from whatever channel description the caller has.

The only place the model touches :mod:`neuript.electrodes`; imported lazily so the model runs on tensors alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["resolve_positions", "resolve_groups", "as_positions"]


def as_positions(positions: Any) -> torch.Tensor:
    """Array-like (C, 3) -> float32 tensor (C, 3) with validation."""
    t = torch.as_tensor(np.asarray(positions, dtype=np.float32) if not isinstance(positions, torch.Tensor) else positions)
    t = t.detach().float()
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"positions must have shape (channels, 3), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("positions contain non-finite values (unknown electrode locations?)")
    return t


def resolve_positions(
    *,
    n_chans: int | None = None,
    chs_info: Sequence[dict] | None = None,
    ch_names: Sequence[str] | None = None,
    positions: Any = None,
) -> tuple[torch.Tensor | None, list[str] | None]:
    """Positions (C, 3) and channel names from explicit positions, MNE ``chs_info`` or channel names.

    Priority: ``positions`` > ``chs_info`` (its ``loc`` when finite, else its names) > ``ch_names``.
    Returns ``(None, names)`` when nothing locates the electrodes.
    """
    names = list(ch_names) if ch_names is not None else None
    if names is None and chs_info is not None:
        names = [ch["ch_name"] for ch in chs_info]
    pos = None
    if positions is not None:
        pos = as_positions(positions)
    elif names is not None:
        from neuript.electrodes import channel_positions  # lazy: owned by the data layer

        info = {"ch_names": [ch["ch_name"] for ch in chs_info], "chs": list(chs_info)} if chs_info is not None else None
        pos = as_positions(channel_positions(names, info=info))
    if pos is not None and names is not None and len(names) != pos.shape[0]:
        raise ValueError(f"{len(names)} channel names but {pos.shape[0]} positions")
    if n_chans is not None:
        got = pos.shape[0] if pos is not None else (len(names) if names is not None else n_chans)
        if got != n_chans:
            raise ValueError(f"n_chans={n_chans} but the channel description has {got} channels")
    return pos, names


def resolve_groups(
    groups: str | Sequence[Sequence[int]] | None,
    *,
    n_chans: int,
    ch_names: Sequence[str] | None = None,
    positions: torch.Tensor | None = None,
) -> list[list[int]]:
    """Channel groups for the IILP head.

    ``groups`` may be an explicit list of index lists, a scheme name understood by
    :func:`neuript.electrodes.lobe_groups` (``"functional"``, ``"hemispheres"``, ``"sagittal"``,
    ``"coronal"``, ``"mean"``), or None (= ``"mean"``, one group of all channels). ``"mean"`` needs no
    channel information.
    """
    if groups is None or (isinstance(groups, str) and groups == "mean"):
        return [list(range(n_chans))]
    if isinstance(groups, str):
        if ch_names is None and positions is None:
            raise ValueError(
                f"groups={groups!r} needs channel names or positions (pass ch_names/chs_info/positions) "
                "or give the groups explicitly"
            )
        from neuript.electrodes import lobe_groups  # lazy: owned by the data layer

        pos = None if positions is None else positions.detach().cpu().numpy()
        out = lobe_groups(names=list(ch_names) if ch_names is not None else None, positions=pos, scheme=groups)
        return [[int(i) for i in g] for g in out]
    out = [[int(i) for i in g] for g in groups]
    for g, members in enumerate(out):
        if not members or any(not 0 <= i < n_chans for i in members):
            raise ValueError(f"channel group {g} = {members} is empty or outside 0..{n_chans - 1}")
    return out
