"""Rebuild the bundled sample from the full datasets (maintainers only; needs the original files).

    python -m neuript.sample_data.make_sample /path/to/shared/data

EEGMAT recordings are resampled from 500 Hz to 128 Hz (MNE polyphase, Kaiser anti-aliasing FIR below 64 Hz, far above the
0.1-30 Hz band every recipe keeps) so that ten subjects fit the 25 MB package budget; channels, names, units,
start time and annotations are kept. EEGMMIDB runs are byte-for-byte copies.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EEGMAT_SUBJECTS = ("00", "03", "06", "09", "12", "15", "18", "21", "28", "30")  # 8 train + 2 val
EEGMMIDB_RUNS = ("S002/S002R01.edf", "S002/S002R03.edf", "S002/S002R04.edf", "S002/S002R08.edf")
EEGMAT_SFREQ = 128.0


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main(shared: Path) -> None:
    import mne

    sums = []
    out = HERE / "eegmat"
    out.mkdir(exist_ok=True)
    for s in EEGMAT_SUBJECTS:
        for r in ("1", "2"):
            src = shared / "eegmat" / f"Subject{s}_{r}.edf"
            raw = mne.io.read_raw_edf(src, preload=True, verbose="error")
            raw.resample(EEGMAT_SFREQ, method="polyphase", verbose="error")
            dst = out / src.name
            mne.export.export_raw(dst, raw, fmt="edf", overwrite=True, verbose="error")
            sums.append(f"{_sha256(dst)}  eegmat/{dst.name}  (from {src.name} sha256 {_sha256(src)})")
    out = HERE / "eegmmidb"
    for rel in EEGMMIDB_RUNS:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / "eegmmidb" / rel, dst)
        sums.append(f"{_sha256(dst)}  eegmmidb/{rel}  (unmodified copy)")
    (HERE / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / ".." / "shared" / "data")
