"""Imports point one way: cli → train → inference → evaluate, data, model → electrodes, runtime, _atomic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "neuript"

#: layer → the neuript layers it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "model": {"data", "train", "inference", "evaluate", "cli"},
    "data": {"model", "train", "inference", "evaluate", "cli"},
    "evaluate": {"model", "train", "inference", "cli"},
    "inference": {"train", "cli"},
    "train": {"cli"},
    "runtime": {"data", "model", "train", "inference", "evaluate", "cli", "electrodes"},
    "electrodes": {"data", "model", "train", "inference", "evaluate", "cli"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the same layer
                continue
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "neuript" and len(parts) > 1:
                out.add(parts[1])
    return out


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down_the_layers(path):
    layer = _layer(path)
    bad = _imports(path) & FORBIDDEN.get(layer, set())
    assert not bad, f"{path.relative_to(PKG)} ({layer}) imports {sorted(bad)}, which sit above it"


def test_the_check_can_fail(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from neuript.train.finetune import finetune\n")
    assert "train" in _imports(f)
