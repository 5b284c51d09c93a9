"""Generic recipe ``bids``: a BIDS EEG dataset, read with a small reader of the BIDS files (no mne-bids needed).

What is read (BIDS 1.9, EEG; https://bids-specification.readthedocs.io/en/stable/modality-specific-files/
electroencephalography.html):

* recordings ``sub-<label>/[ses-<label>/]eeg/sub-<label>[_ses-<label>]_task-<task>[_...]_eeg.<ext>`` of the
  ``task`` option, ``<ext>`` one of the formats :func:`neuript.data.io.read_raw` reads (``edf``, ``bdf``, ``set``,
  ``vhdr``, ...); BrainVision's ``.eeg`` / ``.vmrk`` and EEGLAB's ``.fdt`` companions are found by MNE;
* ``<same name>_events.tsv`` beside it: ``onset``, ``duration`` (s from the first sample) and ``trial_type``
  (else ``value``; or the ``event_column`` option) label the windows; ``n/a`` rows are skipped; ``event_map``
  maps and filters them (``'T1=left,T2=right'``); a recording without one takes its own annotations through
  ``event_map``, or is unlabelled;
* ``<same name>_channels.tsv``: channels with ``status`` ``bad`` are dropped (``bad_channels=keep`` keeps them),
  and so are channels whose ``type`` is not ``EEG`` (EOG, ECG, EMG, MISC, TRIG, ...);
* ``participants.tsv`` at the root: ``participant_id`` lists the subjects (a subject in the tree but not in it is
  reported); ``participant_label=<column>`` labels every recording of a subject by that column (e.g. ``group``),
  which takes precedence over events.

Sidecars are matched by exact name in the recording's folder (BIDS inheritance from parent folders is not
followed). Splits: by subject with a seed by default (``split_by=subject``, ``val``, ``test``, ``seed``; BIDS has
no split of its own), or ``split_by=none`` to put every recording in the ``split`` option's split.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from neuript.data.io import SUPPORTED_SUFFIXES, _suffix
from neuript.data.recipes import Recording, register_recipe
from neuript.data.recipes.table import COMMON_OPTIONS, ManifestError, _LabelledRecordings, _annotation_descriptions, \
    _missing, _read_rows, parse_event_map

__all__ = ["BIDSRecipe", "bids_entities", "find_bids_recordings"]

#: BIDS file name: key-value entities joined by ``_``, then the ``eeg`` suffix and the extension
_ENTITY = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


def bids_entities(name: str) -> dict[str, str] | None:
    """``sub-01_ses-1_task-motor_run-2_eeg.edf`` → ``{"sub": "01", "ses": "1", "task": "motor", "run": "2"}``;
    None when the name is not a BIDS EEG data file name."""
    stem = name
    for suf in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    else:
        return None
    if not stem.endswith("_eeg"):
        return None
    parts = stem[: -len("_eeg")].split("_")
    ents = {}
    for p in parts:
        m = _ENTITY.fullmatch(p)
        if not m:
            return None
        ents[m.group(1)] = m.group(2)
    return ents if "sub" in ents and "task" in ents else None


def find_bids_recordings(root: Path) -> list[tuple[Path, dict[str, str]]]:
    """Every BIDS EEG data file under ``root`` (``sub-*/[ses-*/]eeg/``) with its entities, sorted by path."""
    out = []
    for pattern in ("sub-*/eeg/*_eeg.*", "sub-*/ses-*/eeg/*_eeg.*"):
        for f in root.glob(pattern):
            ents = bids_entities(f.name)
            if ents is not None and f.is_file() and _suffix(f) in SUPPORTED_SUFFIXES:
                out.append((f, ents))
    return sorted(out, key=lambda t: str(t[0]))


@register_recipe("bids")
class BIDSRecipe(_LabelledRecordings):
    """A BIDS EEG dataset: one task, labels from events.tsv (or participants.tsv), bad channels dropped."""

    options = {
        "task": (None, "BIDS task label to prepare (the task-<label> of the file names)"),
        "participant_label": (None, "participants.tsv column labelling every recording of a subject (e.g. group)"),
        "bad_channels": ("drop", "channels marked bad in channels.tsv: drop (default) or keep"),
        "subjects": (None, "comma-separated subject labels to include (default: all)"),
        **COMMON_OPTIONS,
        "split_by": ("subject", "subject (seeded split, see val/test/seed) or none (every recording in 'split')"),
    }
    split_rules = ("subject", "none")

    def recordings(self, source: Path) -> list[Recording]:
        self.config()
        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"bids: root folder {root} does not exist")
        if self.opts["bad_channels"] not in ("drop", "keep"):
            raise ValueError(f"bids: bad_channels must be 'drop' or 'keep', got {self.opts['bad_channels']!r}")
        files = find_bids_recordings(root)
        tasks = sorted({e["task"] for _, e in files})
        if not files:
            raise FileNotFoundError(f"bids: no EEG recordings under {root} (expected sub-<label>/[ses-<label>/]eeg/"
                                    "sub-<label>_task-<task>_eeg.<edf|bdf|set|vhdr>); is --root the dataset's top "
                                    "folder (the one holding dataset_description.json)?")
        task = self.opts["task"]
        if task is None:
            raise ManifestError(f"bids: give the task with --task NAME (tasks under {root}: {', '.join(tasks)})")
        task = str(task)
        files = [(f, e) for f, e in files if e["task"] == task]
        if not files:
            raise FileNotFoundError(f"bids: no recordings of task {task!r} under {root}; tasks found: "
                                    f"{', '.join(tasks)}")
        wanted = self.opts["subjects"]
        if wanted is not None:
            want = {str(s).strip().removeprefix("sub-") for s in re.split(r"[,\s]+", str(wanted)) if str(s).strip()}
            files = [(f, e) for f, e in files if e["sub"] in want]
            if not files:
                raise FileNotFoundError(f"bids: none of the subjects {sorted(want)} has task {task!r} under {root}")
        dataset = "bids"
        desc_file = root / "dataset_description.json"
        if desc_file.is_file():
            try:
                dataset = re.sub(r"[^A-Za-z0-9._-]+", "-", json.loads(desc_file.read_text()).get("Name", "")) \
                    or dataset
            except (ValueError, AttributeError):
                warnings.warn(f"bids: {desc_file} is not valid JSON; ignored", UserWarning, stacklevel=2)
        participants = self._participants(root)
        plabel = self.opts["participant_label"]
        emap = parse_event_map(self.opts["event_map"])
        pending: list[Recording] = []
        seen: dict[str, set[str]] = {}
        basenames: set[str] = set()
        for f, ents in files:
            base = f.name[: f.name.rfind("_eeg")]
            if base in basenames:
                warnings.warn(f"bids: {base} exists in several formats; using the first ({f.name} is skipped)",
                              UserWarning, stacklevel=2)
                continue
            basenames.add(base)
            subject = f"sub-{ents['sub']}"
            if participants is not None and subject not in participants:
                warnings.warn(f"bids: {subject} ({f.name}) is not listed in participants.tsv", UserWarning,
                              stacklevel=2)
            extra: dict[str, Any] = {"drop": self._dropped_channels(f.parent / f"{base}_channels.tsv")}
            if "run" in ents:
                extra["run"] = ents["run"]
            events_tsv = f.parent / f"{base}_events.tsv"
            if plabel is not None:
                row = (participants or {}).get(subject)
                if row is None or str(plabel).lower() not in row:
                    raise ManifestError(f"bids: participant_label={plabel!r} needs participants.tsv with a "
                                        f"{plabel!r} column and a row for {subject} ({root / 'participants.tsv'})")
                value = row[str(plabel).lower()]
                if _missing(value):
                    warnings.warn(f"bids: {subject} has no {plabel!r} in participants.tsv; its recordings are "
                                  "unlabelled", UserWarning, stacklevel=2)
                    extra.update(kind="none")
                else:
                    extra.update(kind="label", label_strings=[value])
            elif events_tsv.is_file():
                on, du, labs, descs = self._events_labels(events_tsv, f"bids: {events_tsv}")
                seen[str(events_tsv)] = descs
                extra.update(kind="events", onsets=on, durations=du, label_strings=labs, events_file=str(events_tsv))
            elif emap:
                descs = _annotation_descriptions(f)
                if descs is not None:
                    seen[str(f)] = descs
                extra.update(kind="annotations")
            else:
                extra.update(kind="none")
            session = ents.get("ses", "")
            pending.append(Recording(path=f, dataset=dataset, subject=subject, session=session, recording=base,
                                     split=self.opts["split"], extra=extra))
        return self._finish(pending, source_desc=f"bids {root}", seen=seen)

    @staticmethod
    def _participants(root: Path) -> dict[str, dict[str, str]] | None:
        """participants.tsv as participant_id → row (lower-case column names), or None when absent."""
        p = root / "participants.tsv"
        if not p.is_file():
            return None
        header, rows = _read_rows(p, "participants file")
        if "participant_id" not in header:
            raise ManifestError(f"bids: {p} has no participant_id column (columns: {', '.join(header)})")
        out = {}
        for _, row in rows:
            pid = row["participant_id"]
            out[pid if pid.startswith("sub-") else f"sub-{pid}"] = row
        return out

    def _dropped_channels(self, channels_tsv: Path) -> list[str]:
        """Channels of a ``*_channels.tsv`` to drop: status ``bad`` (unless bad_channels=keep), type not EEG."""
        if not channels_tsv.is_file():
            return []
        header, rows = _read_rows(channels_tsv, "channels file")
        if "name" not in header:
            raise ManifestError(f"bids: {channels_tsv} has no 'name' column (columns: {', '.join(header)})")
        drop = []
        for _, row in rows:
            bad = row.get("status", "").strip().lower() == "bad" and self.opts["bad_channels"] == "drop"
            typ = row.get("type", "").strip().upper()
            if bad or (typ and typ != "EEG"):
                drop.append(row["name"])
        return drop


