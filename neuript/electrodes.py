"""Electrode names → canonical 10-05 labels → 3D positions, bipolar midpoints and lobe groups.

Pure numpy + MNE. Nothing here reads signals; everything works on channel *names* (and optionally positions
stored in a file's ``info`` or a user montage), so that the model can be given positions and groups as arrays.

Name normalisation (:func:`canonical_name`, :func:`parse_channel`)
------------------------------------------------------------------
* case-insensitive (``FP1`` → ``Fp1``, ``CZ`` → ``Cz``),
* type prefixes are stripped (``EEG Fp1`` → ``Fp1``; ``ECG ECG`` → non-EEG),
* trailing dots/spaces of EEGMMIDB are stripped (``Fc5.`` → ``FC5``, ``C3..`` → ``C3``),
* reference suffixes are stripped (``FP1-REF``, ``EEG Fp1-LE``, ``Cz-AVG``, ``O1-AR`` → monopolar),
* old 10-20 names are mapped to 10-10 names (T3=T7, T4=T8, T5=P7, T6=P8),
* ``X-Y`` where both sides are electrodes is a bipolar derivation (``Fp1-F7``, ``F4-A1``); its position is the
  midpoint of its two electrodes. A derivation between the two ear/mastoid references (``A2-A1``, ``M1-M2``)
  carries no cortical signal and is classed non-EEG,
* ECG/EKG/EOG/EMG/respiration/trigger/status/annotation channels are non-EEG.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from os import PathLike
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

__all__ = [
    "ChannelSpec",
    "UnknownChannelError",
    "TCP_BIPOLAR",
    "TCP_REFERENCE_FUNCTIONAL_GROUPS",
    "canonical_name",
    "parse_channel",
    "channel_positions",
    "electrode_region",
    "lobe_groups",
    "standard_electrodes",
    "read_rename",
    "check_not_grid_cap",
]

#: The 20 double-banana (TCP) bipolar pairs of spec §1, in paper order. Index 12 is ``Fp1-F3`` (the reference
#: code's ``Fp2-F3`` is a typo). Names use the old 10-20 labels as in the paper; :func:`parse_channel` maps them.
TCP_BIPOLAR: tuple[str, ...] = (
    "Fp1-F7", "F7-T3", "T3-T5", "T5-O1",
    "Fp2-F8", "F8-T4", "T4-T6", "T6-O2",
    "T3-C3", "C3-Cz", "Cz-C4", "C4-T4",
    "Fp1-F3", "F3-C3", "C3-P3", "P3-O1",
    "Fp2-F4", "F4-C4", "C4-P4", "P4-O2",
)

#: The reference code's hand-written "Functional" groups for :data:`TCP_BIPOLAR` (frontal, central/parietal,
#: occipital, left temporal, right temporal). :func:`lobe_groups` derives exactly these from the names.
TCP_REFERENCE_FUNCTIONAL_GROUPS: tuple[tuple[int, ...], ...] = (
    (0, 4, 12, 16), (8, 9, 10, 11, 13, 14, 17, 18), (3, 7, 15, 19), (1, 2, 8), (5, 6, 11),
)

_OLD_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
_EAR_REFS = {"A1", "A2", "M1", "M2"}
# Suffixes that name the reference of a monopolar channel, not a second electrode.
_REF_SUFFIXES = {"REF", "LE", "RE", "AR", "AV", "AVG", "AVE", "CAR", "LER", "REF1", "ML", "MA", "M", "A", "N"}
_TYPE_PREFIXES = ("EEG", "ECG", "EKG", "EOG", "EMG", "RESP", "MEG", "STIM", "MISC", "BIO", "SAO2", "SPO2")
_NON_EEG_TYPE_PREFIXES = {"ECG", "EKG", "EOG", "EMG", "RESP", "MEG", "STIM", "MISC", "BIO", "SAO2", "SPO2"}
_NON_EEG_WORDS = re.compile(
    r"(ECG|EKG|EOG|HEOG|VEOG|LOC|ROC|EMG|CHIN|RESP|THOR|ABD|SPO2|SAO2|PLETH|PULSE|HR|TEMP|STATUS|TRIG|TRIGGER|"
    r"STI\d*|STIM|EVENT|MARKER|ANNOT|PHOTIC|IBI|BURSTS|SUPPR|DC\d*|POS\d*|X\d+|GSR|EDA|ACC\w*|LIGHT|SNORE|"
    r"NASAL|ORAL|FLOW|EVENT\s*MARKER|BREATH)",
    re.IGNORECASE,
)

Kind = Literal["eeg", "bipolar", "non_eeg"]


class UnknownChannelError(ValueError):
    """A channel name that is neither a known electrode nor recognisably non-EEG, and has no position."""

    def __init__(self, names: Sequence[str], *, source: str | None = None):
        self.names = list(names)
        where = f" in {source}" if source else ""
        shown = ", ".join(repr(n) for n in self.names[:20]) + (" ..." if len(self.names) > 20 else "")
        super().__init__(
            f"{len(self.names)} channel(s){where} have no known electrode position: {shown}. Fix one of: "
            "(1) drop them (e.g. `raw.drop_channels([...])` or the recipe's channel selection / `picks`), "
            "(2) rename them to 10-05 labels (command line: --rename 'EEG 000=Fp1' or a mapping file; Python: "
            "rename={'EEG 000': 'Fp1'}), "
            "(3) pass a montage file or mne.channels.DigMontage with their positions (montage=...), "
            "or (4) use on_unknown='nan' to get NaN rows and decide yourself."
        )


@dataclass(frozen=True)
class ChannelSpec:
    """What a channel name denotes.

    Attributes
    ----------
    name : str
        The name as given.
    kind : {"eeg", "bipolar", "non_eeg"}
        Monopolar electrode, bipolar derivation of two electrodes, or not an EEG channel.
    electrodes : tuple of str
        Canonical 10-05 labels: one for ``eeg``, two (anode, cathode) for ``bipolar``, empty for ``non_eeg``
        (or for an unknown name, see ``known``).
    known : bool
        False when the name is not recognised at all (neither an electrode nor a non-EEG channel).
    """

    name: str
    kind: Kind
    electrodes: tuple[str, ...]
    known: bool = True

    @property
    def canonical(self) -> str | None:
        """``"Fp1"`` for a monopolar channel, ``"Fp1-F7"`` for a bipolar one, None otherwise."""
        if not self.known or self.kind == "non_eeg":
            return None
        return "-".join(self.electrodes)


# ----------------------------------------------------------------------------------------------------------
# Montage tables
# ----------------------------------------------------------------------------------------------------------


def _montage_name(name: str) -> str:
    """Map the deprecated ``standard_10xx`` names to their new ``colin27_10xx`` names when MNE has them."""
    import mne

    builtin = set(mne.channels.get_builtin_montages())
    if name in builtin and not name.startswith("standard_10"):
        return name
    alt = {"standard_1005": "colin27_1005", "standard_1020": "colin27_1020"}.get(name)
    if alt and alt in builtin:
        return alt
    if name in builtin:
        return name
    raise ValueError(f"Unknown MNE montage {name!r}; choose one of {sorted(builtin)} or pass a DigMontage/file.")


@functools.lru_cache(maxsize=8)
def _standard_table(name: str = "standard_1005") -> dict[str, np.ndarray]:
    """Canonical label → head-frame position (metres) for an MNE built-in montage."""
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        montage = mne.channels.make_standard_montage(_montage_name(name))
    return _montage_table(montage)


def _montage_table(montage) -> dict[str, np.ndarray]:
    import mne

    pos = montage.get_positions()
    if pos["coord_frame"] == "head" or pos["nasion"] is None or pos["lpa"] is None or pos["rpa"] is None:
        # already in head frame, or no fiducials to transform with: take the coordinates as they are
        return {n: np.asarray(p, dtype=np.float64).copy() for n, p in pos["ch_pos"].items()}
    names = list(montage.ch_names)
    info = mne.create_info(names, 100.0, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info.set_montage(montage, on_missing="ignore")
    return {n: np.asarray(ch["loc"][:3], dtype=np.float64).copy() for n, ch in zip(names, info["chs"])}


@functools.lru_cache(maxsize=1)
def _label_lookup() -> dict[str, str]:
    """UPPER-case label → canonical 10-05 label (old 10-20 names mapped to new ones)."""
    table = _standard_table("standard_1005")
    out = {n.upper(): n for n in table if n not in {"T3", "T4", "T5", "T6"}}
    for old, new in _OLD_ALIASES.items():
        out[old] = new
    return out


def standard_electrodes() -> tuple[str, ...]:
    """Canonical labels known to the bundled 10-05 table (MNE ``standard_1005``)."""
    return tuple(sorted(set(_label_lookup().values())))


# ----------------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------------


def _clean(token: str) -> str:
    return token.strip().strip(".").strip().replace(" ", "")


def _electrode(token: str) -> str | None:
    t = _clean(token)
    if not t:
        return None
    return _label_lookup().get(t.upper())


def parse_channel(name: str) -> ChannelSpec:
    """Classify a channel name.

    Parameters
    ----------
    name : str
        Any channel label found in a recording (``"EEG Fp1-LE"``, ``"Fc5."``, ``"F4-A1"``, ``"ECG ECG"``).

    Returns
    -------
    ChannelSpec
        ``kind`` is ``"eeg"`` (one electrode), ``"bipolar"`` (two) or ``"non_eeg"``; ``known`` is False when
        the name is not recognised (neither an electrode nor a non-EEG channel).
    """
    if not isinstance(name, str):
        raise TypeError(f"channel name must be str, got {type(name).__name__}: {name!r}")
    raw = name.strip()
    body = raw
    type_prefix = None
    m = re.match(r"^([A-Za-z0-9]+)[\s:_]+(.+)$", raw)
    if m and m.group(1).upper() in _TYPE_PREFIXES:
        type_prefix, body = m.group(1).upper(), m.group(2)
    if type_prefix in _NON_EEG_TYPE_PREFIXES:
        return ChannelSpec(name, "non_eeg", ())
    parts = [p for p in re.split(r"\s*-\s*", body.strip()) if p != ""]
    if len(parts) == 1:
        e = _electrode(parts[0])
        if e is not None:
            if e in _EAR_REFS:
                # A lone ear/mastoid reference electrode recorded as a channel is a reference, not cortex.
                return ChannelSpec(name, "non_eeg", (e,))
            return ChannelSpec(name, "eeg", (e,))
    elif len(parts) == 2:
        a, b = _electrode(parts[0]), _electrode(parts[1])
        if a is not None and b is None and _clean(parts[1]).upper() in _REF_SUFFIXES:
            if a in _EAR_REFS:
                return ChannelSpec(name, "non_eeg", (a,))
            return ChannelSpec(name, "eeg", (a,))
        if a is not None and b is not None:
            if a in _EAR_REFS and b in _EAR_REFS:
                return ChannelSpec(name, "non_eeg", (a, b))
            return ChannelSpec(name, "bipolar", (a, b))
    if _NON_EEG_WORDS.fullmatch(_clean(body)) or _NON_EEG_WORDS.match(_clean(body).split("-")[0] or "x"):
        return ChannelSpec(name, "non_eeg", ())
    return ChannelSpec(name, "eeg", (), known=False)


def canonical_name(name: str) -> str | None:
    """Canonical 10-05 label of a monopolar channel name, None if it is not a single electrode.

    Examples: ``"EEG Fp1-LE"`` → ``"Fp1"``, ``"Fc5."`` → ``"FC5"``, ``"T3"`` → ``"T7"``, ``"FP1-REF"`` → ``"Fp1"``;
    ``"ECG ECG"``, ``"A2-A1"``, ``"Fp1-F7"`` (bipolar: see :func:`parse_channel`) and unknown names → None.
    """
    spec = parse_channel(name)
    if spec.known and spec.kind == "eeg":
        return spec.electrodes[0]
    return None


# ----------------------------------------------------------------------------------------------------------
# Positions
# ----------------------------------------------------------------------------------------------------------


def _resolve_montage(montage) -> dict[str, np.ndarray]:
    import mne

    if isinstance(montage, mne.channels.DigMontage):
        return {k.upper(): v for k, v in _montage_table(montage).items()}
    if isinstance(montage, (str, PathLike)) and (str(montage).endswith(
            (".elc", ".sfp", ".loc", ".locs", ".eloc", ".csd", ".elp", ".txt", ".hpts", ".bvef", ".xyz", ".tsv", ".csv")
    ) or "/" in str(montage) or "\\" in str(montage)):
        from pathlib import Path

        path = Path(montage)
        if not path.exists():
            raise FileNotFoundError(f"montage file {path} does not exist")
        try:
            dig = mne.channels.read_custom_montage(path)
        except Exception as err:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"could not read montage file {path}: {err}") from err
        return {k.upper(): v for k, v in _montage_table(dig).items()}
    if isinstance(montage, str):
        return {k.upper(): v for k, v in _standard_table(montage).items()}
    raise TypeError(f"montage must be an MNE montage name, a file path or a DigMontage, got {type(montage).__name__}")


def _lookup(table: dict[str, np.ndarray], electrode: str, raw_token: str | None = None) -> np.ndarray | None:
    for key in (electrode, raw_token):
        if key is None:
            continue
        v = table.get(key.upper())
        if v is not None and np.all(np.isfinite(v)):
            return v
    # old aliases the other way round (a montage that only has T3)
    for old, new in _OLD_ALIASES.items():
        if electrode == new and old in table:
            return table[old]
    return None


def _info_position(info, index: int) -> np.ndarray | None:
    loc = np.asarray(info["chs"][index]["loc"][:3], dtype=np.float64)
    if np.all(np.isfinite(loc)) and np.any(loc != 0):
        return loc
    return None


def channel_positions(
    names: Sequence[str],
    *,
    montage="standard_1005",
    info=None,
    rename: Mapping[str, str] | None = None,
    on_unknown: Literal["raise", "nan", "warn"] = "raise",
) -> np.ndarray:
    """3D positions of channels, in metres in MNE's head frame.

    Parameters
    ----------
    names : sequence of str
        Channel names (monopolar or bipolar, any spelling :func:`parse_channel` understands).
    montage : str or mne.channels.DigMontage or path-like, default "standard_1005"
        Where electrode positions come from: an MNE built-in montage name, a DigMontage, or a montage file
        readable by :func:`mne.channels.read_custom_montage`. A user montage may also name raw labels
        (``"EEG 000"``) directly.
    info : mne.Info, optional
        When given, positions stored in ``info['chs'][i]['loc'][:3]`` (finite and non-zero) win; channels are
        matched by name.
    rename : mapping, optional
        Raw name → electrode label (``{"EEG 000": "Fp1"}``) applied before parsing.
    on_unknown : {"raise", "nan", "warn"}
        What to do with channels that have no position: raise :class:`UnknownChannelError` (default), or
        return NaN rows (``"warn"`` also warns).

    Returns
    -------
    numpy.ndarray, shape (C, 3), float64
        Bipolar channels sit at the midpoint of their two electrodes.
    """
    names = list(names)
    rename = dict(rename or {})
    table = _resolve_montage(montage)
    is_std = isinstance(montage, str) and montage in ("standard_1005", "colin27_1005")
    std = table if is_std else None
    info_index = {}
    if info is not None:
        info_index = {ch: i for i, ch in enumerate(info["ch_names"])}
    out = np.full((len(names), 3), np.nan)
    missing: list[str] = []
    for i, name in enumerate(names):
        if name in info_index:
            loc = _info_position(info, info_index[name])
            if loc is not None:
                out[i] = loc
                continue
        mapped = rename.get(name, name)
        direct = table.get(mapped.upper()) if isinstance(mapped, str) else None
        if direct is not None and np.all(np.isfinite(direct)) and not is_std:
            out[i] = direct
            continue
        spec = parse_channel(mapped)
        if spec.known and spec.kind in ("eeg", "bipolar") and spec.electrodes:
            pts = []
            for e in spec.electrodes:
                p = _lookup(table, e)
                if p is None and std is None:
                    p = _lookup(_standard_table("standard_1005"), e)
                pts.append(p)
            if all(p is not None for p in pts):
                out[i] = np.mean(pts, axis=0)
                continue
        missing.append(name)
    if missing:
        if on_unknown == "raise":
            raise UnknownChannelError(missing)
        if on_unknown == "warn":
            warnings.warn(str(UnknownChannelError(missing)), stacklevel=2)
        elif on_unknown != "nan":
            raise ValueError(f"on_unknown must be 'raise', 'nan' or 'warn', got {on_unknown!r}")
    return out


# ----------------------------------------------------------------------------------------------------------
# Regions and lobe groups
# ----------------------------------------------------------------------------------------------------------

FUNCTIONAL_GROUPS = ("frontal", "central", "parietal", "occipital", "left_temporal", "right_temporal")
_TEMPORAL_ROWS = {"T", "FT", "TP", "FTT", "TTP", "TPP", "FFT"}
_ANCHOR_ROWS = {"Fp", "AFp", "AF", "C", "O", "OI", "I", "PO", "POO"}


def _row_and_side(label: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z]+?)(\d+|z)(h?)$", label)
    if not m:
        return label, "mid"
    row, num = m.group(1), m.group(2)
    if num == "z":
        return row, "mid"
    return row, ("left" if int(num) % 2 == 1 else "right")


def electrode_region(label: str) -> tuple[str, bool]:
    """Functional region of one canonical 10-05 electrode and whether it is an *anchor* electrode.

    Regions: ``frontal`` (Fp/AF/F rows), ``central`` (FC/C/CP rows), ``parietal`` (P row), ``occipital``
    (PO/O/I rows), ``left_temporal`` / ``right_temporal`` (T/FT/TP rows and P7/P8 = old T5/T6; P9/P10).
    Anchor electrodes (Fp, AF, C, PO, O, I rows and the mid-temporal T7/T8/T9/T10) define the region of a
    bipolar pair; F-row, P-row, FC/CP and T5/T6 electrodes are *transitional* (see :func:`lobe_groups`).
    """
    row, side = _row_and_side(label)
    num = re.sub(r"\D", "", label)
    if row in ("P",) and num in {"7", "8", "9", "10"}:
        return f"{side}_temporal", False
    if row in _TEMPORAL_ROWS:
        return f"{side if side != 'mid' else 'left'}_temporal", row == "T"
    if row in ("Fp", "AFp", "AF", "AFF", "F", "N", "Nz"):
        return "frontal", row in _ANCHOR_ROWS
    if row in ("FFC", "FC", "FCC", "C", "CCP", "CP"):
        return "central", row in _ANCHOR_ROWS
    if row in ("CPP", "P", "PPO"):
        return "parietal", False
    if row in ("PO", "POO", "O", "OI", "I"):
        return "occipital", row in _ANCHOR_ROWS
    if row in ("A", "M"):
        return f"{side}_temporal", False
    return "central", False


def _nearest_label(pos: np.ndarray) -> str:
    table = _standard_table("standard_1005")
    labels = [k for k in table if k not in {"T3", "T4", "T5", "T6", "A1", "A2", "M1", "M2"}]
    pts = np.stack([table[k] for k in labels])
    return labels[int(np.argmin(np.linalg.norm(pts - pos[None], axis=1)))]


def _functional_from_names(names: Sequence[str]) -> list[set[str]]:
    member: list[set[str]] = []
    for name in names:
        spec = parse_channel(name)
        if not spec.known or spec.kind == "non_eeg" or not spec.electrodes:
            raise UnknownChannelError([name])
        regions = [electrode_region(e) for e in spec.electrodes if e not in _EAR_REFS] or [
            electrode_region(e) for e in spec.electrodes]
        anchors = {r for r, a in regions if a}
        member.append(anchors if anchors else {r for r, _ in regions})
    return member


#: the reference code's channel sets (spec §8), as canonical names
SEED_V_17: tuple[str, ...] = ("Fp1", "Fp2", "F7", "F3", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "P4",
                              "P8", "O1", "O2")
BCIC_IV_2A_16: tuple[str, ...] = ("C5-C1", "C3-Cz", "Cz-C4", "C2-C6", "Fz-C5", "C5-P1", "CP3-POz", "Fz-C1", "C1-Pz",
                                  "CP1-POz", "Fz-C2", "C2-Pz", "CP2-POz", "Fz-C6", "C6-P2", "CP4-POz")

#: the reference code's hand-written IILP groups (spec §8): montage → scheme → groups. Montages of 2 and 3
#: channels (Sleep-EDFx, BCIC-IV-2B) are keyed by their channel count, as in the reference.
REFERENCE_GROUPS: dict[Any, dict[str, list[list[int]]]] = {
    "tcp20": {
        "functional": [list(g) for g in TCP_REFERENCE_FUNCTIONAL_GROUPS],
        "hemispheres": [[0, 1, 2, 3, 8, 9, 12, 13, 14, 15], [4, 5, 6, 7, 10, 11, 16, 17, 18, 19]],
        "sagittal": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19]],
        "coronal": [[0, 4, 12, 16], [1, 5, 13, 17], [2, 6, 14, 18], [3, 7, 15, 19], [8, 9, 10, 11]],
    },
    "seed_v17": {
        "functional": [list(range(0, 6)), list(range(6, 11)), list(range(11, 17))],
        "hemispheres": [[0, 2, 3, 6, 7, 8, 11, 12, 15], [1, 4, 5, 8, 9, 10, 13, 14, 16]],
    },
    "bcic2a16": {
        "functional": [[4, 7, 10, 13], [0, 1, 2, 3], [5, 6, 8, 9], [11, 12, 14, 15]],
        "hemispheres": [[0, 1, 4, 5, 6, 7, 8, 9], [2, 3, 10, 11, 12, 13, 14, 15]],
    },
    3: {"functional": [[0], [1], [2]], "hemispheres": [[0, 1, 2]]},
    2: {"functional": [[0], [1]], "hemispheres": [[0, 1]]},
}


def _reference_montage(names: Sequence[str]) -> Any:
    """The :data:`REFERENCE_GROUPS` key of a channel list, or None."""
    canon_t = tuple(parse_channel(n).canonical or n for n in names)
    if canon_t == tuple(parse_channel(n).canonical for n in TCP_BIPOLAR):
        return "tcp20"
    if canon_t == SEED_V_17:
        return "seed_v17"
    if canon_t == BCIC_IV_2A_16:
        return "bcic2a16"
    if len(canon_t) in (2, 3):
        return len(canon_t)
    return None


def _dedup(groups: list[list[int]]) -> list[list[int]]:
    """Non-empty groups, each once (first occurrence kept)."""
    out: list[list[int]] = []
    for g in groups:
        if g and g not in out:
            out.append(g)
    return out


def lobe_groups(
    names: Sequence[str] | None = None,
    positions: np.ndarray | None = None,
    *,
    scheme: Literal["functional", "hemispheres", "sagittal", "coronal", "mean"] = "functional",
    midline_tol: float = 0.01,
) -> list[list[int]]:
    """Channel index groups for Intra-Inter Lobe Pooling (spec §5).

    Parameters
    ----------
    names : sequence of str, optional
        Channel names (monopolar or bipolar). Preferred for ``"functional"``.
    positions : array (C, 3), optional
        Head-frame positions in metres. Used when ``names`` are not given (a position maps to its nearest
        10-05 electrode for ``"functional"``), and for the geometric schemes.
    scheme : {"functional", "hemispheres", "sagittal", "coronal", "mean"}
        * ``functional`` — groups in order frontal, central, parietal, occipital, left temporal, right temporal;
          empty groups dropped. Monopolar channels go to the region of their electrode
          (:func:`electrode_region`). A bipolar pair goes to the regions of its *anchor* electrodes
          (Fp/AF, C, PO/O and mid-temporal T7/T8 rows); only when neither electrode is an anchor does it go to
          both electrodes' regions. For :data:`TCP_BIPOLAR` this rule gives exactly the reference code's
          hand-written groups (:data:`TCP_REFERENCE_FUNCTIONAL_GROUPS`; no pair anchors on the P row, so the
          parietal group is empty and dropped and C3-P3/C4-P4 fall in "central", as in the reference).
        * ``hemispheres`` — left (x < -tol), right (x > tol); midline channels are in both.
        * ``sagittal`` — left, midline, right (|x| ≤ ``midline_tol`` is midline).
        * ``coronal`` — four equal-width bands from anterior to posterior (y axis) over the montage's range.
        * ``mean`` — one group of all channels.
    midline_tol : float
        Half-width (metres) of the midline band.

    Returns
    -------
    list of list of int
        Groups may overlap; every channel is in at least one group; no group is empty or repeated. For the
        reference code's montages (TCP 20, SEED-V 17, BCIC-IV-2A 16, and 2- or 3-channel sets) the groups are the
        reference's hand-written ones (:data:`REFERENCE_GROUPS`, spec §8) where it defines the scheme.
    """
    if names is None and positions is None:
        raise ValueError("lobe_groups needs channel names or positions (C, 3)")
    n = len(names) if names is not None else len(positions)
    if n == 0:
        raise ValueError("lobe_groups: no channels given")
    if scheme == "mean":
        return [list(range(n))]
    if names is not None:
        ref = REFERENCE_GROUPS.get(_reference_montage(names), {})
        if scheme in ref:  # the reference code's hand-written groups for its montages (spec §8)
            return [list(g) for g in ref[scheme]]
    return _dedup(_derived_groups(names, positions, n=n, scheme=scheme, midline_tol=midline_tol))


def _derived_groups(names, positions, *, n: int, scheme: str, midline_tol: float) -> list[list[int]]:
    """Groups from electrode regions (functional) or positions (the geometric schemes)."""
    if scheme == "functional":
        if names is not None:
            member = _functional_from_names(names)
        else:
            pos = np.asarray(positions, dtype=np.float64)
            member = [{electrode_region(_nearest_label(p))[0]} for p in pos]
        groups = [[i for i in range(n) if g in member[i]] for g in FUNCTIONAL_GROUPS]
        return [g for g in groups if g]
    if positions is None:
        positions = channel_positions(list(names))
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (n, 3) or not np.all(np.isfinite(pos)):
        raise ValueError(f"positions must be a finite (C, 3) array, got shape {pos.shape}")
    x, y = pos[:, 0], pos[:, 1]
    if scheme == "hemispheres":
        groups = [[i for i in range(n) if x[i] <= midline_tol], [i for i in range(n) if x[i] >= -midline_tol]]
    elif scheme == "sagittal":
        groups = [
            [i for i in range(n) if x[i] < -midline_tol],
            [i for i in range(n) if abs(x[i]) <= midline_tol],
            [i for i in range(n) if x[i] > midline_tol],
        ]
    elif scheme == "coronal":
        lo, hi = float(y.min()), float(y.max())
        if hi - lo < 1e-9:
            return [list(range(n))]
        edges = np.linspace(hi, lo, 5)  # anterior → posterior
        band = np.clip(((hi - y) / (hi - lo) * 4).astype(int), 0, 3)
        groups = [[i for i in range(n) if band[i] == b] for b in range(4)]
        del edges
    else:
        raise ValueError(f"unknown lobe scheme {scheme!r}; use functional, hemispheres, sagittal, coronal or mean")
    return [g for g in groups if g]


def iter_eeg(names: Iterable[str]) -> list[int]:
    """Indices of the channels that are EEG (monopolar or bipolar), skipping recognised non-EEG channels."""
    return [i for i, n in enumerate(names) if parse_channel(n).kind != "non_eeg"]


def read_rename(items) -> dict[str, str]:
    """Channel renames from ``OLD=NEW`` strings and/or mapping files (what ``--rename`` takes).

    A file is JSON (``{"EEG 000": "Fp1", ...}``) or a two-column CSV/TSV (old, new; a header line ``old,new``
    is optional). Raises ``ValueError`` naming the bad item or line.
    """
    import csv
    import json
    from pathlib import Path

    out: dict[str, str] = {}
    for item in items or []:
        item = str(item)
        path = Path(item)
        if "=" not in item and path.suffix.lower() in (".json", ".csv", ".tsv", ".txt"):
            if not path.is_file():
                raise ValueError(f"--rename {item}: no such mapping file")
            if path.suffix.lower() == ".json":
                try:
                    mapping = json.loads(path.read_text())
                except ValueError as err:
                    raise ValueError(f"--rename {item}: not valid JSON ({err})") from None
                if not isinstance(mapping, dict):
                    raise ValueError(f"--rename {item}: expected a JSON object {{\"OLD\": \"NEW\"}}")
                out.update({str(k): str(v) for k, v in mapping.items()})
                continue
            delim = "\t" if path.suffix.lower() == ".tsv" else ","
            with open(path, newline="", encoding="utf-8") as fh:
                for n, row in enumerate(csv.reader(fh, delimiter=delim), start=1):
                    if not row or row[0].startswith("#") or (n == 1 and [c.strip().lower() for c in row[:2]] ==
                                                             ["old", "new"]):
                        continue
                    if len(row) < 2 or not row[0].strip() or not row[1].strip():
                        raise ValueError(f"--rename {item} line {n}: expected two columns OLD{delim}NEW, got {row}")
                    out[row[0].strip()] = row[1].strip()
            continue
        if "=" not in item:
            raise ValueError(f"--rename expects OLD=NEW or a mapping file (.json/.csv/.tsv), got {item!r}")
        old, new = item.split("=", 1)
        if not old.strip() or not new.strip():
            raise ValueError(f"--rename expects OLD=NEW with both names, got {item!r}")
        out[old.strip()] = new.strip()
    return out


_GRID_LABEL = re.compile(r"^([A-H])([1-9]|[12][0-9]|3[0-2])$")


def check_not_grid_cap(names, source: str) -> None:
    """Refuse grid-labelled caps (BioSemi 128/256: ``A1..A32, B1..B32, ...``) before their labels are read as
    10-05 names: there ``C3`` is slot 3 of grid row C, not the 10-20 C3, and ``A1`` is not the left ear.

    A cap is grid-labelled when at least 16 labels are letter A-H + number and one number is above 10 (no
    single-letter 10-05 name goes above 10)."""
    hits = [m for n in names if (m := _GRID_LABEL.match(str(n).strip()))]
    if len(hits) >= 16 and any(int(m.group(2)) > 10 for m in hits):
        raise ValueError(
            f"{source}: the channels are labelled as a grid ({', '.join(m.group(0) for m in hits[:6])} ...: "
            f"{len(hits)} labels like a BioSemi 128/256 cap), not with 10-05 names; labels such as C3 or A1 would "
            "be placed at the wrong electrodes. Rename them to the 10-05 electrodes they sit nearest, with "
            "--rename MAPPING.csv (two columns: grid label, 10-05 name).")
