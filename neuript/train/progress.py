"""A progress bar with windows/s and ETA that is silent on non-main ranks and when disabled."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["Progress"]


class Progress:
    """Thin wrapper over :class:`tqdm.tqdm` counting windows (so its rate is windows/s)."""

    def __init__(self, *, total: int, initial: int = 0, desc: str = "", unit: str = "win", enabled: bool = True):
        self._bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=False, dynamic_ncols=True,
                 file=sys.stderr, mininterval=1.0, smoothing=0.1)
            if enabled
            else None
        )

    def update(self, n: int, **postfix: float) -> None:
        if self._bar is None:
            return
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(n)

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
