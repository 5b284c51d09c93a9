"""Helpers shared by the benchmarks: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def machine() -> str:
    """CPU, cores, memory, load and library versions: what every benchmark table states."""
    import mne
    import numpy as np
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM{gpu}, {platform.system()} {platform.release()}, "
            f"1-min load average {load:.1f} at the end of the run; Python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), mne {mne.__version__}")


def write_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace the section between ``<!-- name:start -->`` and ``<!-- name:end -->`` (or append it)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        a, b = old.index(start), old.index(end) + len(end)
        new = old[:a] + body + old[b:]
    else:
        new = old.rstrip("\n") + "\n\n" + body + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
    return path
