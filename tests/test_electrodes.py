"""Electrode names, positions and lobe groups (neuript.electrodes), on synthetic names and every real file."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest

from neuript.electrodes import (TCP_BIPOLAR, TCP_REFERENCE_FUNCTIONAL_GROUPS, UnknownChannelError, canonical_name,
                                channel_positions, lobe_groups, parse_channel)

@pytest.mark.parametrize("name, expected", [
    ("EEG Fp1", "Fp1"), ("Fc5.", "FC5"), ("C3..", "C3"), ("Fcz.", "FCz"), ("FP1-REF", "Fp1"),
    ("EEG Fp1-LE", "Fp1"), ("T3", "T7"), ("t4", "T8"), ("EEG T5", "P7"), ("T6-REF", "P8"), ("cz", "Cz"),
    ("EEG FPZ-AVG", "Fpz"), ("Oz", "Oz"),
    ("ECG ECG", None), ("EEG A2-A1", None), ("Fp1-F7", None), ("EEG 000", None), ("STATUS", None), ("EOG", None),
])
def test_canonical_name(name, expected):
    assert canonical_name(name) == expected


@pytest.mark.parametrize("name, kind, electrodes", [
    ("Fp1-F7", "bipolar", ("Fp1", "F7")), ("F4-A1", "bipolar", ("F4", "A1")), ("CZ-A2", "bipolar", ("Cz", "A2")),
    ("EEG Fpz-Cz", "bipolar", ("Fpz", "Cz")), ("T3-T5", "bipolar", ("T7", "P7")),
    ("EEG A2-A1", "non_eeg", ("A2", "A1")), ("ECG ECG", "non_eeg", ()), ("EOG horizontal", "non_eeg", ()),
    ("EMG submental", "non_eeg", ()), ("Event marker", "non_eeg", ()), ("Status", "non_eeg", ()),
    ("TRIGGER", "non_eeg", ()), ("EEG Fp1", "eeg", ("Fp1",)),
])
def test_parse_channel(name, kind, electrodes):
    spec = parse_channel(name)
    assert spec.known and spec.kind == kind and spec.electrodes == electrodes


def test_unknown_name_is_flagged():
    spec = parse_channel("EEG 000")
    assert not spec.known


def test_positions_midpoint_alias_and_units():
    p = channel_positions(["Fp1", "F7", "Fp1-F7", "T3", "T7", "EEG T3-LE"])
    np.testing.assert_allclose(p[2], (p[0] + p[1]) / 2)
    np.testing.assert_allclose(p[3], p[4])
    np.testing.assert_allclose(p[5], p[4])
    r = np.linalg.norm(p, axis=1)
    assert np.all((r > 0.05) & (r < 0.15)), "positions must be in metres on a head-sized sphere"
    cz = channel_positions(["Cz"])[0]
    assert cz[2] > 0.08 and abs(cz[0]) < 0.01, "MNE head frame: +z up, x to the right"
    left, right = channel_positions(["C3", "C4"])
    assert left[0] < 0 < right[0]


def test_unknown_channel_error_names_channel_and_fix():
    with pytest.raises(UnknownChannelError) as ei:
        channel_positions(["Fp1", "EEG 000", "XYZ9"])
    msg = str(ei.value)
    assert "'EEG 000'" in msg and "'XYZ9'" in msg and "rename" in msg and "montage" in msg and "drop" in msg
    p = channel_positions(["Fp1", "XYZ9"], on_unknown="nan")
    assert np.isfinite(p[0]).all() and np.isnan(p[1]).all()


def test_rename_map_and_user_montage(tmp_path):
    p = channel_positions(["EEG 000"], rename={"EEG 000": "Oz"})
    np.testing.assert_allclose(p[0], channel_positions(["Oz"])[0])
    dig = mne.channels.make_dig_montage(ch_pos={"EEG 000": [0.01, 0.02, 0.09], "EEG 001": [-0.03, 0.0, 0.08]},
                                        coord_frame="head")
    np.testing.assert_allclose(channel_positions(["EEG 000", "EEG 001"], montage=dig),
                               [[0.01, 0.02, 0.09], [-0.03, 0.0, 0.08]], atol=1e-9)
    f = tmp_path / "m.sfp"
    f.write_text("EEG000 0.01 0.02 0.09\nEEG001 -0.03 0.0 0.08\n")
    pos = channel_positions(["EEG000", "EEG001"], montage=f)
    assert pos.shape == (2, 3) and np.isfinite(pos).all()


def test_info_positions_win():
    info = mne.create_info(["EEG 000", "Fp1"], 100.0, "eeg")
    info["chs"][0]["loc"][:3] = [0.0, 0.05, 0.09]
    p = channel_positions(["EEG 000", "Fp1"], info=info)
    np.testing.assert_allclose(p[0], [0.0, 0.05, 0.09])
    np.testing.assert_allclose(p[1], channel_positions(["Fp1"])[0])


def test_tcp_functional_groups_match_reference():
    groups = lobe_groups(TCP_BIPOLAR)
    assert [tuple(g) for g in groups] == list(TCP_REFERENCE_FUNCTIONAL_GROUPS)
    assert len(TCP_BIPOLAR) == 20 and TCP_BIPOLAR[12] == "Fp1-F3"
    # from positions alone (midpoints) the grouping still covers every channel
    pos = channel_positions(TCP_BIPOLAR)
    g2 = lobe_groups(positions=pos)
    assert set().union(*map(set, g2)) == set(range(20))


def test_monopolar_functional_groups():
    names = ["Fp1", "Fp2", "F3", "F4", "F7", "F8", "T3", "T4", "C3", "C4", "T5", "T6", "P3", "P4", "O1", "O2",
             "Fz", "Cz", "Pz"]
    groups = lobe_groups(names)
    assert len(groups) == 6
    frontal, central, parietal, occipital, lt, rt = groups
    assert {0, 1, 2, 3, 16} <= set(frontal) and {8, 9, 17} == set(central) and {12, 13, 18} == set(parietal)
    assert {14, 15} == set(occipital) and 6 in lt and 10 in lt and 7 in rt and 11 in rt


@pytest.mark.parametrize("scheme", ["functional", "hemispheres", "sagittal", "coronal", "mean"])
def test_every_channel_in_a_group(scheme):
    for names in (list(TCP_BIPOLAR), ["Fp1", "Fp2", "Cz", "Pz", "O1", "O2", "T7", "T8"]):
        groups = lobe_groups(names, scheme=scheme)
        assert all(groups) and set().union(*map(set, groups)) == set(range(len(names)))
    hemi = lobe_groups(["C3", "Cz", "C4"], scheme="hemispheres")
    assert hemi == [[0, 1, 2]]  # the reference's 3-channel table (spec §8), not the geometric split


def _signal_files(root: Path):
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in (".edf", ".fif", ".set") and "Hypnogram" not in p.name:
            yield p


def test_channel_mapping_on_every_shared_file(shared_data):
    from neuript.data.io import read_raw

    files = list(_signal_files(shared_data))
    assert len(files) >= 80
    seen = set()
    for f in files:
        raw = read_raw(f, preload=False)
        specs = [parse_channel(n) for n in raw.ch_names]
        eeg = [n for n, s in zip(raw.ch_names, specs) if s.kind != "non_eeg"]
        if f.suffix == ".set":
            # EEGLAB test file: 'EEG 000'.. names and no stored positions -> clear error naming them
            assert not any(s.known for s in specs)
            with pytest.raises(UnknownChannelError, match="EEG 000"):
                channel_positions(eeg, info=raw.info)
            seen.add("set")
            continue
        pos = channel_positions(eeg, info=raw.info)
        assert np.isfinite(pos).all(), f
        if "eegmat" in f.parts:
            assert len(eeg) == 19 and [n for n, s in zip(raw.ch_names, specs) if s.kind == "non_eeg"] == \
                   ["EEG A2-A1", "ECG ECG"]
            seen.add("eegmat")
        elif "eegmmidb" in f.parts:
            assert len(eeg) == 64 and len(set(map(tuple, np.round(pos, 6)))) == 64
            seen.add("eegmmidb")
        elif f.suffix == ".fif":
            assert [s.kind for s in specs] == ["bipolar", "bipolar"]
            seen.add("fif")
    assert seen == {"set", "eegmat", "eegmmidb", "fif"}


# ---------------------------------------------------------------------------------------------- spec §8
SPEC8 = {  # channel set -> scheme -> groups, copied from ../shared/spec/NEURIPT.md §8
    "tcp": {
        "functional": [[0, 4, 12, 16], [8, 9, 10, 11, 13, 14, 17, 18], [3, 7, 15, 19], [1, 2, 8], [5, 6, 11]],
        "hemispheres": [[0, 1, 2, 3, 8, 9, 12, 13, 14, 15], [4, 5, 6, 7, 10, 11, 16, 17, 18, 19]],
        "sagittal": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19]],
        "coronal": [[0, 4, 12, 16], [1, 5, 13, 17], [2, 6, 14, 18], [3, 7, 15, 19], [8, 9, 10, 11]],
    },
    "seed": {"functional": [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]],
             "hemispheres": [[0, 2, 3, 6, 7, 8, 11, 12, 15], [1, 4, 5, 8, 9, 10, 13, 14, 16]]},
    "bcic2a": {"functional": [[4, 7, 10, 13], [0, 1, 2, 3], [5, 6, 8, 9], [11, 12, 14, 15]],
               "hemispheres": [[0, 1, 4, 5, 6, 7, 8, 9], [2, 3, 10, 11, 12, 13, 14, 15]]},
    "three": {"functional": [[0], [1], [2]], "hemispheres": [[0, 1, 2]]},
    "sleep": {"functional": [[0], [1]], "hemispheres": [[0, 1]]},
}
SETS = {
    "tcp": list(TCP_BIPOLAR),
    "seed": ["FP1", "FP2", "F7", "F3", "F4", "F8", "T7", "C3", "CZ", "C4", "T8", "P7", "P3", "P4", "P8", "O1", "O2"],
    "bcic2a": ["C5-C1", "C3-Cz", "Cz-C4", "C2-C6", "Fz-C5", "C5-P1", "CP3-POz", "Fz-C1", "C1-Pz", "CP1-POz",
               "Fz-C2", "C2-Pz", "CP2-POz", "Fz-C6", "C6-P2", "CP4-POz"],
    "three": ["EEG C3", "EEG Cz", "EEG C4"],
    "sleep": ["EEG Fpz-Cz", "EEG Pz-Oz"],
}


@pytest.mark.parametrize("montage", sorted(SPEC8))
def test_lobe_groups_equal_the_reference_tables(montage):
    for scheme, groups in SPEC8[montage].items():
        assert lobe_groups(SETS[montage], scheme=scheme) == groups, (montage, scheme)


@pytest.mark.parametrize("names", [
    ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7", "P8", "Fz", "Cz",
     "Pz"],
    ["Fp1", "Fp2", "F7", "F8"],
    ["Fpz-Cz", "Pz-Oz", "C3-Cz", "Cz-C4"],
    ["C3", "C4", "Cz", "Pz", "Oz"],
], ids=["eegmat19", "frontal4", "bipolar4", "central5"])
def test_derived_groups_are_never_empty_or_repeated_and_cover_every_channel(names):
    for scheme in ("functional", "hemispheres", "sagittal", "coronal"):
        groups = lobe_groups(names, scheme=scheme)
        assert all(groups) and len({tuple(g) for g in groups}) == len(groups), (scheme, groups)
        assert set().union(*map(set, groups)) == set(range(len(names))), (scheme, groups)
