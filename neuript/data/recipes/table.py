"""Generic recipe ``table``: your own recordings, listed in a CSV or TSV manifest.

One row per recording::

    path,subject,session,split,label,events
    rec/alice_rest.edf,alice,1,train,rest,
    rec/alice_task.bdf,alice,1,train,task,
    rec/bob_run1.set,bob,,val,,rec/bob_run1_events.tsv
    rec/carol.fif,carol,,test,,

* ``path`` (required): a recording in any format :func:`neuript.data.io.read_raw` reads (EDF/BDF/GDF, FIF,
  EEGLAB ``.set``, BrainVision ``.vhdr``, CNT). Relative paths are resolved against the manifest's folder.
* ``subject`` (required), ``session`` (optional): identify the recording; splits by subject use ``subject``.
* ``split`` (optional): ``train`` / ``val`` / ``test`` / ``pretrain``; an empty cell takes the ``split`` option.
  Ignored (with a warning) when ``split_by=subject``.
* ``label`` (optional): one label for every window of the recording, a name (``rest``) or an integer.
* ``events`` (optional): an events file (CSV/TSV, BIDS-like): ``onset`` and ``duration`` in seconds from the
  start of the recording and a label column (``label``, ``trial_type`` or ``value``, the first present, or the
  ``event_column`` option); rows labelled ``n/a`` or empty are skipped.
* A row with neither ``label`` nor ``events`` takes its labels from the recording's own annotations when
  ``event_map`` is given (``"T1=left,T2=right"``: annotation description → label; other annotations are not
  used), else it is unlabelled (``-1``: fine for pretraining, refused by fine-tuning).

``event_map`` also maps (and filters) the labels of events files. Label names are mapped to integers in sorted
order (``left`` 0, ``right`` 1, ``rest`` 2) and stored in the store's ``label_names``; when every label is an
integer the integers are kept. Windows of labelled events are event-locked by default (``windows=locked``: windows
inside each event, one at the onset of an event shorter than a window) or sliding over the whole recording
(``windows=interval``: each window labelled by the event its start falls in, ``-1`` outside every event).

Errors name the manifest, its line and the column, and what to do. The same base class serves the ``bids``
recipe (:mod:`neuript.data.recipes.bids`).
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from neuript.data.io import SUPPORTED_SUFFIXES, _suffix
from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, register_recipe
from neuript.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, apply_subject_split, split_summary

__all__ = ["TableRecipe", "read_events_file", "parse_event_map", "parse_rename", "label_codes",
           "KNOWN_SPLITS", "MANIFEST_COLUMNS"]

#: split values a manifest (or the ``split`` option) may use
KNOWN_SPLITS = ("train", "val", "test", "pretrain")
#: manifest columns: required, then optional
MANIFEST_COLUMNS = ("path", "subject", "session", "split", "label", "events")
#: label columns of an events file, in the order they are looked for
EVENT_LABEL_COLUMNS = ("label", "trial_type", "value")
#: cell values that mean "no value" (BIDS uses n/a)
_MISSING = ("", "n/a", "na", "nan")
#: window modes, with the names the built-in recipes use as aliases
_WINDOW_MODES = {"locked": "locked", "events": "locked", "interval": "interval", "sliding": "interval"}

# options shared by the generic recipes (table, bids)
COMMON_OPTIONS: dict[str, tuple[Any, str]] = {
    "event_map": (None, "annotation/event description -> label, e.g. 'T1=left,T2=right' (others unused)"),
    "event_column": (None, "label column of events files (default: the first of label, trial_type, value)"),
    "windows": ("locked", "locked (windows inside each labelled event) or interval (sliding, labelled by the "
                          "event a window starts in, -1 outside events)"),
    "montage": ("tcp", "tcp (20-ch double banana), average (CAR) or as_recorded"),
    "window_s": (4.0, "window length in seconds"),
    "stride_s": (None, "stride in seconds (default: window, non-overlapping)"),
    "reject_uv": (None, "reject windows with |x| above this many uV (default: off; paper's pretraining rule: 100)"),
    "notch": (50.0, "mains frequency: 50 (Europe, Asia) or 60 (Americas); none disables"),
    "rename": (None, "channel renames for non-standard names, e.g. 'EEG 000=Fp1,EEG 001=Fp2'"),
    "split": ("train", "split of recordings without one (train, val, test or pretrain)"),
    "split_by": ("table", "table (the manifest's split column) or subject (seeded split, see val/test/seed)"),
    "val": (DEFAULT_VAL, "fraction of subjects in val with split_by=subject"),
    "test": (DEFAULT_TEST, "fraction of subjects in test with split_by=subject"),
    "seed": (DEFAULT_SEED, "seed of the subject split (same seed and subjects: same split)"),
}


class ManifestError(ValueError):
    """A manifest, events file or option is not usable; the message names the file, line and column."""


def _missing(value: Any) -> bool:
    return value is None or str(value).strip().lower() in _MISSING


def _pairs(value: Any, option: str, example: str) -> dict[str, str]:
    """``"a=b, c=d"`` (or a dict) → ``{"a": "b", "c": "d"}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    out: dict[str, str] = {}
    for item in str(value).split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ManifestError(f"{option}: expected NAME=VALUE pairs separated by commas (e.g. {example!r}), "
                                f"got {item.strip()!r}")
        k, v = item.split("=", 1)
        if not k.strip() or not v.strip():
            raise ManifestError(f"{option}: empty name or value in {item.strip()!r} (e.g. {example!r})")
        out[k.strip()] = v.strip()
    return out


def parse_event_map(value: Any) -> dict[str, str]:
    """``"T1=left,T2=right"`` (or a dict) → ``{"T1": "left", "T2": "right"}``."""
    return _pairs(value, "event_map", "T1=left,T2=right")


def parse_rename(value: Any) -> dict[str, str]:
    """``"EEG 000=Fp1,EEG 001=Fp2"`` (or a dict) → raw channel name → electrode label."""
    return _pairs(value, "rename", "EEG 000=Fp1,EEG 001=Fp2")


def _is_int(s: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", s.strip()) is not None


def label_codes(values: Iterable[str]) -> tuple[dict[str, int], dict[int, str]]:
    """Label strings → integer codes and the store's ``label_names``.

    All integers: kept as they are (``"0"`` → 0, must be ≥ 0). Otherwise: sorted names → 0, 1, ...
    """
    vals = sorted({str(v).strip() for v in values})
    if vals and all(_is_int(v) for v in vals):
        codes = {v: int(v) for v in vals}
        if min(codes.values()) < 0:
            raise ManifestError(f"labels must be >= 0 or names, got {min(codes.values())} (-1 means 'no label': "
                                "leave the cell empty instead)")
        names: dict[int, str] = {}
        for v, c in codes.items():
            names.setdefault(c, str(c))
        return codes, dict(sorted(names.items()))
    codes = {v: i for i, v in enumerate(vals)}
    return codes, {i: v for v, i in codes.items()}


def _delimiter(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    raise ManifestError(f"{what} {path}: unknown table format {suffix!r}; name it .csv (comma-separated) or .tsv "
                        "(tab-separated)")


def _read_rows(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower case) and (line number, row) of a CSV/TSV file; blank and ``#`` comment lines skipped."""
    delim = _delimiter(path, what)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often write a byte-order mark
    except UnicodeDecodeError as err:
        raise ManifestError(f"{what} {path}: not UTF-8 text ({err}); save it as UTF-8 CSV/TSV") from None
    lines = text.splitlines()
    reader = csv.reader(lines, delimiter=delim)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    for lineno, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise ManifestError(f"{what} {path}, line {lineno}: {len(cells)} cells but the header has "
                                f"{len(header)} columns ({', '.join(header)}); check the separator "
                                f"({'tab' if delim == chr(9) else 'comma'}) and quote cells that contain it")
        rows.append((lineno, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}))
    return header or [], rows


def read_events_file(path: Path, *, column: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV/TSV events file (BIDS ``*_events.tsv`` layout).

    Parameters
    ----------
    path : Path
        Columns ``onset`` (s, from the start of the recording), optional ``duration`` (s; missing or ``n/a`` =
        0) and a label column.
    column : str, optional
        The label column; default the first of ``label``, ``trial_type``, ``value`` present.

    Returns
    -------
    onsets, durations : numpy.ndarray
    labels : list of str
        Rows whose label is empty or ``n/a`` are skipped.
    """
    header, rows = _read_rows(path, "events file")
    if "onset" not in header:
        raise ManifestError(f"events file {path}: no 'onset' column (columns: {', '.join(header) or 'none'}); "
                            "it needs onset (s), duration (s) and a label column (label, trial_type or value)")
    if column is not None:
        col = column.strip().lower()
        if col not in header:
            raise ManifestError(f"events file {path}: no column {column!r} (event_column option); columns: "
                                f"{', '.join(header)}")
    else:
        col = next((c for c in EVENT_LABEL_COLUMNS if c in header), None)
        if col is None:
            raise ManifestError(f"events file {path}: no label column; name it label, trial_type or value, or set "
                                f"event_column (columns: {', '.join(header)})")
    onsets, durations, labels = [], [], []
    for lineno, row in rows:
        if _missing(row.get(col)):
            continue
        vals = []
        for name in ("onset", "duration"):
            cell = row.get(name, "")
            if name == "duration" and _missing(cell):
                vals.append(0.0)
                continue
            try:
                v = float(cell)
            except ValueError:
                v = float("nan")
            if not np.isfinite(v) or v < 0:
                raise ManifestError(f"events file {path}, line {lineno}, column {name!r}: {cell!r} is not a "
                                    "non-negative number of seconds")
            vals.append(v)
        onsets.append(vals[0])
        durations.append(vals[1])
        labels.append(str(row[col]).strip())
    return np.asarray(onsets, float), np.asarray(durations, float), labels


def _annotation_descriptions(path: Path) -> set[str] | None:
    """Annotation descriptions of a recording, or None when they cannot be read here (the worker then reports
    the file)."""
    import mne

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {str(d).strip() for d in mne.read_annotations(path).description}
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the worker with its own message
        try:
            from neuript.data.io import read_raw

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return {str(d).strip() for d in read_raw(path, preload=False).annotations.description}
        except Exception:  # noqa: BLE001
            return None


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "rec"


class _LabelledRecordings(Recipe):
    """Shared machinery of the generic recipes: label coding, event maps, channel fixes, splits, events.

    Subclasses build a list of pending recordings (:class:`Recording` with ``extra["kind"]`` one of ``label``,
    ``events``, ``annotations``, ``none`` and the label strings) and call :meth:`_finish`.
    """

    label_names: dict[int, str] = {}
    options = dict(COMMON_OPTIONS)

    def __init__(self, **opts: Any):
        super().__init__(**opts)
        self._splits: dict[str, Any] | None = None
        self.label_names = {}  # known after recordings(); per instance, unlike the built-in recipes

    # --- configuration ---------------------------------------------------------------------------------
    def _window_mode(self) -> str:
        mode = str(self.opts["windows"]).lower()
        if mode not in _WINDOW_MODES:
            raise ValueError(f"{self.name}: windows must be 'locked' or 'interval', got {self.opts['windows']!r}")
        return _WINDOW_MODES[mode]

    #: values of the split_by option: the recipe's own rule first, then the seeded subject split
    split_rules: tuple[str, ...] = ("table", "subject")

    def _check_split_options(self) -> None:
        if self.opts["split_by"] not in self.split_rules:
            raise ValueError(f"{self.name}: split_by must be {' or '.join(repr(r) for r in self.split_rules)}, got "
                             f"{self.opts['split_by']!r}")
        if self.opts["split"] not in KNOWN_SPLITS:
            raise ValueError(f"{self.name}: split must be one of {', '.join(KNOWN_SPLITS)}, got "
                             f"{self.opts['split']!r}")

    def config(self) -> PreprocessConfig:
        self._window_mode()
        self._check_split_options()
        parse_event_map(self.opts["event_map"])
        parse_rename(self.opts["rename"])
        return PreprocessConfig(reference=self.opts["montage"], window_s=float(self.opts["window_s"]),
                                stride_s=self.opts["stride_s"], reject_uv=self.opts["reject_uv"],
                                notch=self.opts["notch"])

    # --- shared steps ------------------------------------------------------------------------------------
    def _events_labels(self, path: Path, where: str) -> tuple[list[float], list[float], list[str], set[str]]:
        """An events file's events with ``event_map`` applied (unmapped descriptions dropped), and the set of
        descriptions it holds."""
        try:
            on, du, labs = read_events_file(path, column=self.opts["event_column"])
        except ManifestError as err:
            raise ManifestError(f"{where}: {err}") from None
        emap = parse_event_map(self.opts["event_map"])
        if emap:
            keep = [i for i, lab in enumerate(labs) if lab in emap]
            return [float(on[i]) for i in keep], [float(du[i]) for i in keep], [emap[labs[i]] for i in keep], set(labs)
        return on.tolist(), du.tolist(), labs, set(labs)

    def _finish(self, pending: list[Recording], *, source_desc: str, seen: dict[str, set[str]]) -> list[Recording]:
        """Code the labels, check the event map against what was found, assign splits.

        ``seen``: description → where found (for the unknown-key check of ``event_map``); the recordings whose
        annotations or events could not be read here are not in it.
        """
        emap = parse_event_map(self.opts["event_map"])
        uses_map = [r for r in pending if r.extra["kind"] in ("annotations", "events")]
        if emap and uses_map:
            found = set().union(*seen.values()) if seen else set()
            unknown = [k for k in emap if k not in found]
            if unknown and seen:
                raise ManifestError(
                    f"{source_desc}: event_map names {unknown}, which match no annotation or event of the "
                    f"{len(seen)} recording(s) read (found: {', '.join(sorted(found)) or 'none'}). Fix the "
                    "descriptions in --event-map (they are case-sensitive)")
        values: list[str] = list(emap.values()) if uses_map else []
        for r in pending:
            values.extend(r.extra.get("label_strings", []))
        codes, names = label_codes(values)
        recs = []
        for r in pending:
            extra = {k: v for k, v in r.extra.items() if k != "label_strings"}
            label = -1
            if r.extra["kind"] == "label":
                label = codes[r.extra["label_strings"][0]]
            elif r.extra["kind"] == "events":
                extra["labels"] = [codes[s] for s in r.extra["label_strings"]]
            elif r.extra["kind"] == "annotations":
                extra["event_map"] = {k: codes[v] for k, v in emap.items()}
            recs.append(Recording(path=r.path, dataset=r.dataset, subject=r.subject, session=r.session,
                                  recording=r.recording, split=r.split, label=label, extra=extra))
        self.label_names = names
        if self.opts["split_by"] == "subject":
            recs, self._splits = apply_subject_split(recs, val=self.opts["val"], test=self.opts["test"],
                                                     seed=self.opts["seed"])
        else:
            self._splits = split_summary(recs, by=str(self.opts["split_by"]))
            subj_splits: dict[str, set[str]] = {}
            for r in recs:
                subj_splits.setdefault(r.subject, set()).add(r.split)
            both = {s: sorted(v) for s, v in subj_splits.items() if len(v) > 1}
            if both:
                ex = ", ".join(f"{s} in {'+'.join(v)}" for s, v in list(both.items())[:3])
                warnings.warn(f"{source_desc}: {len(both)} subject(s) are in more than one split ({ex}): their "
                              "windows leak between splits; use --split-by subject for a subject-wise split",
                              UserWarning, stacklevel=3)
            if any(r.label >= 0 or r.extra["kind"] != "none" for r in recs) and \
                    not {"val", "pretrain"} & {r.split for r in recs}:
                warnings.warn(f"{source_desc}: no recording is in the 'val' split; fine-tuning needs one (give a "
                              "split column, or --split-by subject --val 0.15 --test 0.15)", UserWarning, stacklevel=3)
        return recs

    # --- per recording, in the worker ----------------------------------------------------------------------
    def events(self, raw, rec: Recording) -> Events | None:
        # prepare hands the loaded recording to events() before preprocessing it: the one place a recipe sees
        # the raw, so channel fixes (renames, bad / non-EEG channels from a sidecar) are applied here
        rename = {k: v for k, v in parse_rename(self.opts["rename"]).items() if k in raw.ch_names}
        if rename:
            raw.rename_channels(rename, verbose="error")
        drop = [c for c in rec.extra.get("drop", []) if c in raw.ch_names]
        if drop:
            raw.drop_channels(drop)
        kind = rec.extra["kind"]
        mode = self._window_mode()
        if kind in ("label", "none"):
            return None  # sliding windows, every one labelled rec.label
        if kind == "events":
            # events files count from the first sample; prepare subtracts raw.first_time from event onsets
            # (the time base of MNE annotations), so it is added here
            first = float(getattr(raw, "first_time", 0.0) or 0.0)
            return Events(np.asarray(rec.extra["onsets"], float) + first, np.asarray(rec.extra["durations"], float),
                          np.asarray(rec.extra["labels"], np.int64), mode=mode)
        emap = rec.extra["event_map"]
        ann = raw.annotations
        labels = np.asarray([emap.get(str(d).strip(), -1) for d in ann.description], dtype=np.int64)
        return Events(np.asarray(ann.onset, float), np.asarray(ann.duration, float), labels, mode=mode)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self._splits is not None:
            d["splits"] = self._splits
        return d


@register_recipe("table")
class TableRecipe(_LabelledRecordings):
    """Recordings listed in a CSV/TSV manifest (``path, subject[, session, split, label, events]``)."""

    options = {
        "manifest": (None, "CSV/TSV file, one row per recording: path, subject[, session, split, label, events]"),
        "dataset": (None, "dataset name stored with the windows (default: the manifest's file name)"),
        **COMMON_OPTIONS,
    }

    def _manifest_path(self, source: Path | None) -> Path:
        if self.opts["manifest"] is not None:
            return Path(str(self.opts["manifest"])).expanduser()
        if source is not None and Path(source).is_file():
            return Path(source)
        raise ManifestError("table: no manifest given; pass --manifest FILE.csv (or .tsv) with one row per "
                            "recording: path,subject[,session,split,label,events]")

    def recordings(self, source: Path | None = None) -> list[Recording]:
        self.config()  # validates the options before any file is read
        mpath = self._manifest_path(source)
        if not mpath.is_file():
            raise FileNotFoundError(f"table: manifest {mpath} does not exist")
        header, rows = _read_rows(mpath, "manifest")
        where = f"manifest {mpath}"
        missing_cols = [c for c in ("path", "subject") if c not in header]
        if missing_cols:
            raise ManifestError(f"{where}, line 1: missing column(s) {missing_cols} (header: "
                                f"{', '.join(header) or 'empty'}). The first line must name the columns: "
                                "path,subject[,session,split,label,events]")
        extra_cols = [c for c in header if c not in MANIFEST_COLUMNS]
        if extra_cols:
            warnings.warn(f"{where}: ignoring unknown column(s) {extra_cols} (known: {', '.join(MANIFEST_COLUMNS)})",
                          UserWarning, stacklevel=2)
        if not rows:
            raise ManifestError(f"{where} has no rows; add one line per recording under the header, e.g. "
                                "'rec/s01.edf,s01,,train,rest,'")
        base = mpath.parent
        dataset = str(self.opts["dataset"] or _safe_id(mpath.stem))
        emap = parse_event_map(self.opts["event_map"])
        by_subject = self.opts["split_by"] == "subject"
        if by_subject and any(not _missing(r.get("split")) for _, r in rows):
            warnings.warn(f"{where}: split_by=subject: the manifest's split column is ignored", UserWarning,
                          stacklevel=2)
        pending: list[Recording] = []
        seen_paths: dict[Path, int] = {}
        seen: dict[str, set[str]] = {}
        used_ids: set[str] = set()
        for lineno, row in rows:
            at = f"{where}, line {lineno}"
            cell = row.get("path", "")
            if _missing(cell):
                raise ManifestError(f"{at}, column 'path': empty; give the recording's file (relative to {base})")
            path = Path(cell).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ManifestError(f"{at}, column 'path': {path} does not exist (relative paths are resolved "
                                    f"against the manifest's folder {base}); fix the path or remove the row")
            if _suffix(path) not in SUPPORTED_SUFFIXES:
                raise ManifestError(f"{at}, column 'path': {path.name} is not a supported recording format; "
                                    f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
            key = path.resolve()
            if key in seen_paths:
                raise ManifestError(f"{at}, column 'path': {path} is already listed on line {seen_paths[key]}; "
                                    "list every recording once")
            seen_paths[key] = lineno
            subject = row.get("subject", "")
            if _missing(subject):
                raise ManifestError(f"{at}, column 'subject': empty; every recording needs its subject (splits "
                                    "keep a subject's recordings together)")
            session = "" if _missing(row.get("session")) else row["session"]
            split = self.opts["split"]
            if not by_subject and not _missing(row.get("split")):
                split = row["split"].lower()
                if split not in KNOWN_SPLITS:
                    raise ManifestError(f"{at}, column 'split': unknown split {row['split']!r}; use one of "
                                        f"{', '.join(KNOWN_SPLITS)} (or leave it empty for {self.opts['split']!r})")
            has_label, has_events = not _missing(row.get("label")), not _missing(row.get("events"))
            if has_label and has_events:
                raise ManifestError(f"{at}: both 'label' ({row['label']!r}) and 'events' ({row['events']!r}) are "
                                    "given; a recording takes one label for all its windows or labelled events, "
                                    "not both: empty one of the two cells")
            extra: dict[str, Any] = {"line": lineno}
            if has_label:
                extra.update(kind="label", label_strings=[row["label"]])
            elif has_events:
                ev = Path(row["events"]).expanduser()
                ev = ev if ev.is_absolute() else base / ev
                if not ev.is_file():
                    raise ManifestError(f"{at}, column 'events': {ev} does not exist (relative paths are resolved "
                                        f"against {base}); fix the path or empty the cell")
                on, du, labs, descs = self._events_labels(ev, f"{at}, column 'events'")
                if not labs:
                    warnings.warn(f"{at}: events file {ev} has no labelled events"
                                  f"{' in event_map' if emap else ''}; the recording gives no labelled windows",
                                  UserWarning, stacklevel=2)
                extra.update(kind="events", onsets=on, durations=du, label_strings=labs, events_file=str(ev))
                seen[str(ev)] = descs
            elif emap:
                descs = _annotation_descriptions(path)
                if descs is not None:
                    seen[str(path)] = descs
                    if not set(emap) & descs:
                        warnings.warn(f"{at}: {path.name} has none of the annotations in event_map "
                                      f"({', '.join(emap)}; it has {', '.join(sorted(descs)) or 'none'}); it gives "
                                      "no labelled windows", UserWarning, stacklevel=2)
                extra.update(kind="annotations")
            else:
                extra.update(kind="none")
            rid = _safe_id(f"{dataset}_{subject}" + (f"_{session}" if session else "") + f"_{path.stem}")
            if rid in used_ids:  # same subject/session/file name in two folders: keep ids stable and unique
                rid = f"{rid}-{hashlib.sha1(str(key).encode()).hexdigest()[:8]}"
            used_ids.add(rid)
            pending.append(Recording(path=path, dataset=dataset, subject=subject, session=session, recording=rid,
                                     split=split, extra=extra))
        return self._finish(pending, source_desc=where, seen=seen)
