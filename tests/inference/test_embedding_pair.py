"""``embed_file`` writes the embeddings and their ``.times.npy`` sidecar as a pair: an interrupted rewrite never
leaves embeddings beside another run's window times."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neuript.inference.predict import _save_pair


def test_pair_is_replaced_together(tmp_path):
    main, side = tmp_path / "r.embeddings.npy", tmp_path / "r.embeddings.times.npy"
    _save_pair(main, np.zeros((3, 4)), side, np.arange(3.0))
    _save_pair(main, np.ones((5, 4)), side, np.arange(5.0))
    assert np.load(main).shape == (5, 4) and np.load(side).shape == (5,)
    assert sorted(p.name for p in tmp_path.iterdir()) == [main.name, side.name]  # no temporary left


@pytest.mark.parametrize("fail_on", ["side", "main"])
def test_interrupted_rewrite_never_mismatches(tmp_path, monkeypatch, fail_on):
    main, side = tmp_path / "r.embeddings.npy", tmp_path / "r.embeddings.times.npy"
    _save_pair(main, np.zeros((3, 4)), side, np.arange(3.0))
    real = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(main if fail_on == "main" else side):
            raise KeyboardInterrupt  # killed at this rename
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _save_pair(main, np.ones((5, 4)), side, np.arange(5.0))
    monkeypatch.undo()
    if main.exists():  # whatever is left, an embeddings file has its own run's times
        assert np.load(main).shape[0] == np.load(side).shape[0]
    assert not main.exists()  # the old embeddings were removed before the sidecar changed
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
