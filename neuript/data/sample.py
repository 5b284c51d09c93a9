"""The bundled offline sample of real recordings (see ``neuript/sample_data/README.md`` for attribution)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_path", "SAMPLES"]

#: sample name → description
SAMPLES = {
    "eegmat": "EEGMAT (MentalArithmetic), 10 subjects x 2 runs at 128 Hz: 8 train (00-21) + 2 val (28, 30)",
    "eegmmidb": "EEGMMIDB, 4 runs of S002 (R01 baseline, R03 movement, R04 + R08 imagery), 64 ch at 160 Hz",
}


def sample_path(name: str) -> Path:
    """Folder of a bundled sample, usable as ``--source`` for the recipe of the same name.

    Parameters
    ----------
    name : {"eegmat", "eegmmidb"}

    Returns
    -------
    pathlib.Path

    Raises
    ------
    KeyError
        Unknown sample name.
    FileNotFoundError
        The package was installed without its sample data.
    """
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; available: {', '.join(sorted(SAMPLES))}")
    try:
        from importlib.resources import files

        root = Path(str(files("neuript") / "sample_data"))
    except Exception:  # noqa: BLE001
        root = Path(__file__).resolve().parents[1] / "sample_data"
    path = root / name
    if not path.is_dir() or not any(path.rglob("*.edf")):
        raise FileNotFoundError(f"bundled sample {name!r} not found at {path}; reinstall neuript with its "
                                "package data (pip install neuript) or use your own --source folder")
    return path
