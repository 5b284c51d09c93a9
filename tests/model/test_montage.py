"""Building the model from channel names / MNE chs_info (uses neuript.electrodes)."""

import pytest
import torch

electrodes = pytest.importorskip("neuript.electrodes")

from neuript.model import NeurIPT  # noqa: E402

TINY = dict(d_model=16, n_heads=2, d_ff=16, expert_hidden=8, shared_hidden=16)


def test_tcp_names_give_reference_functional_groups():
    m = NeurIPT(n_outputs=2, ch_names=list(electrodes.TCP_BIPOLAR), **TINY).eval()
    assert m.positions.shape == (20, 3)
    # spec §7: the reference code's hand-written Functional groups for TCP
    assert sorted(map(sorted, m.groups)) == sorted(
        map(sorted, [[0, 4, 12, 16], [8, 9, 10, 11, 13, 14, 17, 18], [3, 7, 15, 19], [1, 2, 8], [5, 6, 11]])
    )
    assert m(torch.randn(2, 20, 64)).shape == (2, 2)


def test_chs_info_path():
    mne = pytest.importorskip("mne")
    names = ["Fp1", "Fp2", "C3", "C4", "O1", "O2", "Pz"]
    info = mne.create_info(names, 64.0, "eeg")
    m = NeurIPT(n_outputs=3, chs_info=info["chs"], groups="hemispheres", **TINY).eval()
    assert m.ch_names == names and m.positions.shape == (7, 3)
    assert m(torch.randn(1, 7, 128)).shape == (1, 3)
    p = electrodes.channel_positions(names)
    m2 = NeurIPT(n_outputs=3, positions=p, groups="mean", position_encoding="continuous", **TINY).eval()
    assert m2(torch.randn(1, 7, 128)).shape == (1, 3)
