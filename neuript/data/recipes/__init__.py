"""Dataset recipes: which files, which labels, which splits, which preprocessing.

A recipe is a small class registered by name with :func:`register_recipe`::

    @register_recipe("eegmat")
    class EEGMAT(Recipe):
        ...

``get_recipe("eegmat", montage="average")`` returns an instance with its options applied.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from neuript.data.preprocess import PreprocessConfig

__all__ = ["Events", "Recording", "Recipe", "RECIPES", "register_recipe", "get_recipe", "list_recipes"]

#: name → recipe class
RECIPES: dict[str, type["Recipe"]] = {}

_BUILTIN = ("eegmat", "eegmmidb", "sleep_edfx", "table", "bids", "mumtaz", "p300", "seedv", "bcic2a", "tuh")


@dataclass(frozen=True)
class Recording:
    """One recording to prepare.

    Attributes
    ----------
    path : Path
    dataset, subject, session : str
    recording : str
        Unique id within the store (used as the shard file name).
    split : str
        ``train`` / ``val`` / ``test`` / ``pretrain``.
    label : int
        Label of every window of the recording (``-1`` = none, or labels come from events).
    extra : dict
        Recipe-specific data (e.g. the run number), passed back to :meth:`Recipe.events`.
    """

    path: Path
    dataset: str
    subject: str
    session: str
    recording: str
    split: str
    label: int = -1
    extra: dict = field(default_factory=dict)


@dataclass
class Events:
    """Labelled intervals of a recording.

    ``mode="interval"``: sliding windows over the whole recording, each labelled by the interval its start
    falls in (``-1`` when none). ``mode="locked"``: windows inside each interval (one at its onset when the
    interval is shorter than a window), see :func:`neuript.data.preprocess.event_windows`. Intervals labelled
    ``-1`` never make windows in ``locked`` mode.
    """

    onsets: np.ndarray
    durations: np.ndarray
    labels: np.ndarray
    mode: str = "interval"


class Recipe:
    """Base class. Subclasses set :attr:`name`, :attr:`label_names`, :attr:`options` and implement
    :meth:`recordings` (and :meth:`events` for event-locked windows, :meth:`read` for files MNE cannot read)."""

    name: ClassVar[str] = ""
    #: label → name
    label_names: ClassVar[dict[int, str]] = {}
    #: option → (default, help); every option is settable from the CLI with ``--set name=value``
    options: ClassVar[dict[str, tuple[Any, str]]] = {}

    def __init__(self, **opts: Any):
        unknown = set(opts) - set(self.options)
        if unknown:
            raise ValueError(f"recipe {self.name!r}: unknown option(s) {sorted(unknown)}; "
                             f"valid: {sorted(self.options)}")
        self.opts = {k: v[0] for k, v in self.options.items()}
        for k, v in opts.items():
            self.opts[k] = _coerce(v, self.options[k][0], k)

    # --- to implement -------------------------------------------------------------------------------
    def config(self) -> PreprocessConfig:
        """The preprocessing configuration (paper defaults adjusted for this dataset and the options)."""
        return PreprocessConfig()

    def recordings(self, source: Path) -> list[Recording]:
        """The recordings under ``source`` (a missing optional part warns, it does not crash)."""
        raise NotImplementedError

    def read(self, rec: Recording):
        """The recording as an ``mne.io.BaseRaw``. Default: :func:`neuript.data.io.read_raw` of ``rec.path``
        (EDF/BDF/GDF/FIF/EEGLAB/BrainVision/CNT, with its checks). Override it for files MNE cannot read
        (a ``.mat`` or ``.npy`` export, say): return an ``mne.io.RawArray`` in volts with channel names, and
        the rest of ``prepare`` (preprocessing, windows, rejection, checks) is unchanged."""
        from neuript.data.io import read_raw

        return read_raw(rec.path)

    def events(self, raw, rec: Recording) -> "Events | None":
        """How windows get labels: None for fixed-length sliding windows all labelled ``rec.label``, or an
        :class:`Events` (onsets/durations in seconds from the recording start, labels)."""
        return None

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description stored in the window store."""
        return {"recipe": self.name, "options": dict(self.opts), "label_names": {int(k): v for k, v in
                                                                              self.label_names.items()}}


def _coerce(value: Any, default: Any, key: str) -> Any:
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if default is None:
        low = value.lower()
        if low in ("none", "null", ""):
            return None
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(default, bool):
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {key}: expected a boolean, got {value!r}")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value) if value.lower() not in ("none", "null") else None
    if isinstance(default, (list, tuple)):
        return [v for v in re.split(r"[,\s]+", value) if v]
    return value


def parse_int_set(value: Any) -> set[int] | None:
    """``None`` → None; ``"0,1, 28"`` / ``[0, 1]`` / ``4`` → a set of ints."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return {int(value)}
    items = value if isinstance(value, (list, tuple, set)) else re.split(r"[,\s]+", str(value).strip())
    return {int(float(x)) for x in items if str(x) != ""}


def register_recipe(name: str) -> Callable[[type[Recipe]], type[Recipe]]:
    """Class decorator adding a recipe to :data:`RECIPES` under ``name``."""

    def deco(cls: type[Recipe]) -> type[Recipe]:
        if name in RECIPES and RECIPES[name] is not cls:
            raise ValueError(f"recipe {name!r} is already registered by {RECIPES[name].__module__}")
        cls.name = name
        RECIPES[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    for mod in _BUILTIN:
        importlib.import_module(f"neuript.data.recipes.{mod}")


def list_recipes() -> list[str]:
    """Names of the registered recipes."""
    _load_builtin()
    return sorted(RECIPES)


def get_recipe(name: str, **options: Any) -> Recipe:
    """Instantiate a registered recipe with options."""
    _load_builtin()
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name](**options)


def apply_config_overrides(cfg: PreprocessConfig, overrides: dict[str, Any]) -> PreprocessConfig:
    """Return ``cfg`` with fields replaced (string values coerced to the field's type)."""
    d = cfg.to_dict()
    for k, v in overrides.items():
        if k not in d:
            raise ValueError(f"unknown preprocessing option {k!r}; valid: {sorted(d)}")
        default = d[k]
        if isinstance(v, str):
            if v.lower() in ("none", "null"):
                v = None
            elif isinstance(default, bool):
                v = _coerce(v, default, k)
            elif isinstance(default, (int, float)) or (default is None and k not in ("channels", "bipolar_pairs")):
                try:
                    v = float(v)
                except ValueError:
                    pass
            elif k in ("channels", "bipolar_pairs"):
                v = [x for x in re.split(r"[,\s]+", v) if x]
        d[k] = v
    return PreprocessConfig.from_dict(d)


del dataclasses


def find_files(source, pattern: str) -> list:
    """Files under ``source`` whose name matches the regular expression ``pattern`` case-insensitively (so
    ``Subject00_1.EDF`` is found like ``Subject00_1.edf``), sorted by path."""
    rx = re.compile(pattern, re.IGNORECASE)
    return sorted(p for p in Path(source).rglob("*") if p.is_file() and rx.fullmatch(p.name))
