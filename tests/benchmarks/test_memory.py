"""Allocator helpers: finding tcmalloc, the environment that loads it, and which malloc a process runs on."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import memory

REPO = Path(__file__).resolve().parents[2]


def test_find_tcmalloc_honours_the_environment_variable(tmp_path, monkeypatch):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setenv("NEURIPT_TCMALLOC", str(lib))
    assert memory.find_tcmalloc() == str(lib)
    monkeypatch.setenv("NEURIPT_TCMALLOC", str(tmp_path / "missing.so"))
    assert memory.find_tcmalloc() is None


def test_tcmalloc_env_preloads_and_keeps_pages(tmp_path):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    env = memory.tcmalloc_env(str(lib), base={"LD_PRELOAD": "/other.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == f"{lib} /other.so"
    assert env["TCMALLOC_RELEASE_RATE"] == "0" and env["PATH"] == "/bin"


def test_tcmalloc_env_without_tcmalloc_says_how_to_install(monkeypatch):
    monkeypatch.setattr(memory, "find_tcmalloc", lambda: None)
    with pytest.raises(FileNotFoundError, match="apt install libtcmalloc-minimal4"):
        memory.tcmalloc_env()


_CODE = "from benchmarks.memory import allocator_in_use as a; print(a())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_allocator_in_use_is_glibc_by_default():
    out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
    assert out == "glibc"


@pytest.mark.skipif(memory.find_tcmalloc() is None, reason="tcmalloc is not installed on this machine")
def test_allocator_in_use_reports_a_preloaded_tcmalloc():
    out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, check=True,
                         env=memory.tcmalloc_env(), cwd=REPO).stdout.strip()
    assert out == "tcmalloc"
