"""The hostile-input suite (issue 11, item 11): bad inputs made from the real recordings, run through the
``neuript`` command as a user runs it, for every verb that takes user input.

Every case asserts
- the exit code (0: accepted or flagged; 1: a user error; 2: an argument error);
- for an error: ``error:`` and no traceback, no "internal error", and the specific words that name the file /
  channel / value and the fix;
- for a flagged result: the flag in the output file;
- that nothing else changed: every file that existed before the command (the inputs, an earlier predictions
  CSV under the very name the command would write, stores, the models and runs of the session fixtures) is
  byte-identical afterwards, and no file was added (no temporary file left) except the case's own outputs.

No code path may unpickle: ``pickle.load(s)`` and ``torch.load`` raise during every case.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from hostile_tools import (changed, copy_tree, edf_labels, edf_set_field, edf_set_labels, edf_set_units, run_cli,
                           save_fif, scaled, snapshot, truncate)


# ---------------------------------------------------------------------------------------------- the case table
@dataclass
class Ctx:
    """What a case's builder gets: its own folder and the session's real data, models and stores."""

    d: Path
    edf_src: Path
    raw: object  # 30 s of the real recording (mne.io.Raw)
    model: Path  # the fine-tuning run (read-only: watched)
    pretrained: Path
    stores: dict
    shared: Path
    earlier_csv: bytes
    monkeypatch: pytest.MonkeyPatch
    new_ok: list = field(default_factory=list)  # outputs the command may add (paths or folders)
    modify_ok: list = field(default_factory=list)  # files it may change (a repair)

    def edf(self, name: str, src: Path | None = None) -> Path:
        p = self.d / name
        shutil.copyfile(src or self.edf_src, p)
        return p

    def fif(self, name: str, raw=None) -> Path:
        return save_fif(self.raw if raw is None else raw, self.d / name)

    def earlier(self, name: str) -> Path:
        """An earlier output under ``name`` (must come out byte-identical)."""
        p = self.d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.earlier_csv)
        return p

    def model_copy(self) -> Path:
        return copy_tree(self.model / "seed0" / "model", self.d / "model")

    def store_copy(self, which: str = "eegmat") -> Path:
        return copy_tree(self.stores[which], self.d / f"store_{which}")

    def run_copy(self) -> Path:
        return copy_tree(self.model, self.d / "run")

    def table(self, *files: Path, name: str = "manifest.csv") -> Path:
        m = self.d / name
        m.write_text("path,subject,label,split\n" + "".join(f"{f},{k:02d},task,train\n" for k, f in enumerate(files)))
        return m


@dataclass
class Case:
    id: str
    verb: str
    cls: str  # the class of hostile input (for the report)
    build: Callable[[Ctx], list]
    code: int
    expect: tuple[str, ...] = ()  # words the output must hold (case-insensitive)
    check: Callable[[Ctx, object], None] | None = None  # more checks (flags in the output file, ...)
    typer: bool = False  # an argument error reported by typer itself (usage panel, exit 2)


CASES: list[Case] = []


def case(id, verb, cls, code, *expect, check=None, typer=False):
    def deco(fn):
        CASES.append(Case(id=id, verb=verb, cls=cls, build=fn, code=code, expect=expect, check=check, typer=typer))
        return fn
    return deco


def _predict(ctx, rec, *extra, model=None):
    return ["predict", rec, "--model", model or ctx.model, "--device", "cpu", *extra]


def _embed(ctx, rec, *extra, model=None):
    return ["embed", rec, "--model", model or ctx.model, "--device", "cpu", *extra]


def _rename_all(raw, fmt="chan{:02d}"):
    r = raw.copy()
    odd = {ch: fmt.format(k) for k, ch in enumerate(r.ch_names) if ch.startswith("EEG ") and "-" not in ch}
    r.rename_channels(odd)
    return r, odd


def _csv(ctx, name):
    return pd.read_csv(ctx.d / name)


# ============================================================================================== predict
# --- damaged files
@case("predict-truncated-edf", "predict", "corrupt file", 1, "cut.edf", "truncated", "re-download")
def _(ctx):
    truncate(ctx.edf("cut.edf"), 0.5)
    ctx.earlier("cut.predictions.csv")
    return _predict(ctx, ctx.d / "cut.edf")


@case("predict-stub-edf", "predict", "corrupt file", 1, "stub.edf", "not a valid EDF", "re-download")
def _(ctx):
    truncate(ctx.edf("stub.edf"), 100)
    return _predict(ctx, ctx.d / "stub.edf")


@case("predict-garbled-header", "predict", "corrupt file", 1, "garbled.edf", "corrupt EDF/BDF header",
      "re-download")
def _(ctx):
    edf_set_field(ctx.edf("garbled.edf"), 252, 4, "x1")  # number of signals
    ctx.earlier("garbled.predictions.csv")
    return _predict(ctx, ctx.d / "garbled.edf")


@case("predict-header-size-mismatch", "predict", "corrupt file", 1, "hsize.edf", "header size", "re-export")
def _(ctx):
    edf_set_field(ctx.edf("hsize.edf"), 184, 8, "1024")
    return _predict(ctx, ctx.d / "hsize.edf")


@case("predict-junk-fif", "predict", "corrupt file", 1, "junk_raw.fif", "could not be read as .fif", "corrupt")
def _(ctx):
    (ctx.d / "junk_raw.fif").write_bytes(os.urandom(4096))
    return _predict(ctx, ctx.d / "junk_raw.fif")


@case("predict-unsupported-suffix", "predict", "corrupt file", 1, "rec.txt", "unsupported file type", ".edf")
def _(ctx):
    (ctx.d / "rec.txt").write_text("0.1, 0.2\n")
    return _predict(ctx, ctx.d / "rec.txt")


@case("predict-missing-file", "predict", "corrupt file", 1, "absent.edf", "no such recording file")
def _(ctx):
    return _predict(ctx, ctx.d / "absent.edf")


@case("predict-hypnogram", "predict", "annotation-only file", 1, "Hypnogram.edf", "no EEG channels", "PSG")
def _(ctx):
    p = ctx.edf("SC4001EC-Hypnogram.edf", ctx.shared / "formats" / "SC4001EC-Hypnogram.edf")
    return _predict(ctx, p)


# --- units and amplitudes
@case("predict-non-voltage-unit", "predict", "units", 1, "EEG Fp2", "not a voltage", "physical dimension")
def _(ctx):
    edf_set_units(ctx.edf("bs.edf"), "BS", only=1)
    return _predict(ctx, ctx.d / "bs.edf")


@case("predict-mv-as-uv", "predict", "units", 1, "mv.edf", "unit error", "physical dimension")
def _(ctx):
    edf_set_units(ctx.edf("mv.edf"), "mV")
    ctx.earlier("mv.predictions.csv")
    return _predict(ctx, ctx.d / "mv.edf")


@case("predict-volts-unit", "predict", "units", 1, "v.edf", "unit error", "physical dimension")
def _(ctx):
    edf_set_units(ctx.edf("v.edf"), "V")
    return _predict(ctx, ctx.d / "v.edf")


@case("predict-nanovolts-unit", "predict", "units", 1, "nv.edf", "implausibly small", "unit")
def _(ctx):
    edf_set_units(ctx.edf("nv.edf"), "nV")
    return _predict(ctx, ctx.d / "nv.edf")


@case("predict-uv-stored-as-volts", "predict", "units", 1, "x1e6_raw.fif", "microvolts stored as volts",
      "rescale")
def _(ctx):
    return _predict(ctx, ctx.fif("x1e6_raw.fif", scaled(ctx.raw, ctx.raw.ch_names, 1e6)))


@case("predict-one-channel-wrong-gain", "predict", "units", 1, "gain_raw.fif", "electrode O2", "gain",
      "--allow-missing")
def _(ctx):
    return _predict(ctx, ctx.fif("gain_raw.fif", scaled(ctx.raw, ["EEG O2"], 1e3)))


# --- flat electrodes (flagged)
def _flat_fp1(ctx, name, seconds=15.0):
    r = ctx.raw.copy()
    k = r.ch_names.index("EEG Fp1")
    n = int(seconds * r.info["sfreq"])
    r._data[k, :n] = r._data[k, n]
    return ctx.fif(name, r)


def _check_flat(ctx, res):
    t = _csv(ctx, "flat_raw.predictions.csv")
    flagged = t["quality"] == "flat_electrode:Fp1"
    assert flagged.any() and (t.loc[flagged, "start_s"] < 15.0).all(), t[["start_s", "quality"]]
    assert (t.loc[t["start_s"] >= 15.0, "quality"] != "flat_electrode:Fp1").all()
    assert "flagged" in res.text


@case("predict-flat-electrode-flagged", "predict", "flat electrode", 0, check=_check_flat)
def _(ctx):
    ctx.earlier("flat_raw.v0.predictions.csv")  # a neighbour's output: untouched
    ctx.new_ok.append(ctx.d / "flat_raw.predictions.csv")
    return _predict(ctx, _flat_fp1(ctx, "flat_raw.fif"))


# --- sampling rates
@case("predict-rate-below-band", "predict", "sampling rate", 1, "50 Hz", "30 Hz", "band-pass", "60 Hz")
def _(ctx):
    return _predict(ctx, ctx.fif("r50_raw.fif", ctx.raw.copy().resample(50.0, verbose="error")))


def _check_upsampled(ctx, res):
    t = _csv(ctx, "r62_raw.predictions.csv")
    assert t["upsampled"].all() and set(t["source_sfreq"]) == {62.0}
    assert "upsampled" in res.text


@case("predict-upsampled-flagged", "predict", "sampling rate", 0, check=_check_upsampled)
def _(ctx):
    ctx.new_ok.append(ctx.d / "r62_raw.predictions.csv")
    return _predict(ctx, ctx.fif("r62_raw.fif", ctx.raw.copy().resample(62.0, verbose="error")))


def _check_unusual(ctx, res):
    t = _csv(ctx, "r2505_raw.predictions.csv")
    assert set(t["source_sfreq"]) == {250.5} and not t["upsampled"].any()
    assert "unusual sampling rate 250.5 Hz" in res.text


@case("predict-unusual-rate-reported", "predict", "sampling rate", 0, check=_check_unusual)
def _(ctx):
    ctx.new_ok.append(ctx.d / "r2505_raw.predictions.csv")
    return _predict(ctx, ctx.fif("r2505_raw.fif", ctx.raw.copy().resample(250.5, verbose="error")))


@case("predict-short-recording", "predict", "short recording", 1, "short_raw.fif", "shorter than one 5.0 s window")
def _(ctx):
    return _predict(ctx, ctx.fif("short_raw.fif", ctx.raw.copy().crop(0, 3.0)))


# --- names of files and outputs
def _check_upper(ctx, res):
    assert len(_csv(ctx, "REC.predictions.csv")) == 12


@case("predict-upper-case-EDF", "predict", "file names", 0, check=_check_upper)
def _(ctx):
    ctx.new_ok.append(ctx.d / "REC.predictions.csv")
    return _predict(ctx, ctx.edf("REC.EDF"))


def _check_stem(ctx, res):
    assert len(_csv(ctx, "rec.v1.predictions.csv")) == 12


@case("predict-default-name-keeps-stem", "predict", "file names", 0, check=_check_stem)
def _(ctx):
    ctx.earlier("rec.v2.predictions.csv")
    ctx.earlier("rec.predictions.csv")
    ctx.new_ok.append(ctx.d / "rec.v1.predictions.csv")
    return _predict(ctx, ctx.edf("rec.v1.edf"))


@case("predict-out-is-input", "predict", "never lose a file", 1, "is the input recording itself", "--out")
def _(ctx):
    rec = ctx.edf("keep.edf")
    return _predict(ctx, rec, "--out", rec)


@case("predict-out-links-to-input", "predict", "never lose a file", 1, "is the input recording itself")
def _(ctx):
    rec = ctx.edf("keep.edf")
    (ctx.d / "link.csv").symlink_to(rec)
    return _predict(ctx, rec, "--out", ctx.d / "link.csv")


@case("predict-out-relative-path-to-input", "predict", "never lose a file", 1, "is the input recording itself")
def _(ctx):
    rec = ctx.edf("keep.edf")
    (ctx.d / "sub").mkdir()
    return _predict(ctx, rec, "--out", ctx.d / "sub" / ".." / "keep.edf")


# --- channel labels
@case("predict-unknown-labels", "predict", "channel labels", 1, "odd_raw.fif", "chan00", "--rename",
      "--allow-missing")
def _(ctx):
    return _predict(ctx, ctx.fif("odd_raw.fif", _rename_all(ctx.raw)[0]))


def _check_renamed(ctx, res):
    assert len(_csv(ctx, "odd_raw.predictions.csv")) == 6


@case("predict-rename-mapping-file", "predict", "channel labels", 0, check=_check_renamed)
def _(ctx):
    raw, odd = _rename_all(ctx.raw)
    (ctx.d / "map.csv").write_text("".join(f"{new},{old}\n" for old, new in odd.items()))
    ctx.new_ok.append(ctx.d / "odd_raw.predictions.csv")
    return _predict(ctx, ctx.fif("odd_raw.fif", raw), "--rename", ctx.d / "map.csv")


@case("predict-rename-bad-mapping", "predict", "channel labels", 1, "map.csv line 2", "two columns")
def _(ctx):
    (ctx.d / "map.csv").write_text("chan00,EEG Fp1\nchan01\n")
    return _predict(ctx, ctx.edf("rec.edf"), "--rename", ctx.d / "map.csv")


@case("predict-rename-without-equals", "predict", "channel labels", 1, "OLD=NEW", "Fp1")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--rename", "Fp1")


@case("predict-duplicate-labels", "predict", "channel labels", 1, "dup.edf", "'EEG Fp1' (signals 1, 2)",
      "duplicate channel labels", "header")
def _(ctx):
    edf_set_labels(ctx.edf("dup.edf"), {"EEG Fp2": "EEG Fp1"})
    return _predict(ctx, ctx.d / "dup.edf")


@case("predict-non-ascii-label", "predict", "channel labels", 1, "accent.edf", "EEG Fp1\u00e9", "--rename")
def _(ctx):
    edf_set_labels(ctx.edf("accent.edf"), {"EEG Fp1": "EEG Fp1\u00e9"})
    return _predict(ctx, ctx.d / "accent.edf")


@case("predict-missing-electrode", "predict", "missing electrodes", 1, "no_cz_raw.fif", "'Cz'", "--allow-missing")
def _(ctx):
    return _predict(ctx, ctx.fif("no_cz_raw.fif", ctx.raw.copy().drop_channels(["EEG Cz"])))


@case("predict-too-many-missing", "predict", "missing electrodes", 1, "lacks 6 of the 17", "--max-interpolated")
def _(ctx):
    gone = ["EEG Cz", "EEG C3", "EEG C4", "EEG F3", "EEG P3", "EEG F4"]
    return _predict(ctx, ctx.fif("six_raw.fif", ctx.raw.copy().drop_channels(gone)), "--allow-missing")


def _check_interp(ctx, res):
    assert set(_csv(ctx, "no_cz_raw.predictions.csv")["interpolated"]) == {"Cz"}
    assert "interpolated 1 missing electrode(s) ['Cz']" in res.text


@case("predict-allow-missing-flagged", "predict", "missing electrodes", 0, check=_check_interp)
def _(ctx):
    ctx.new_ok.append(ctx.d / "no_cz_raw.predictions.csv")
    return _predict(ctx, ctx.fif("no_cz_raw.fif", ctx.raw.copy().drop_channels(["EEG Cz"])), "--allow-missing")


@case("predict-grid-cap", "predict", "channel labels", 1, "grid_raw.fif", "labelled as a grid", "--rename")
def _(ctx):
    return _predict(ctx, ctx.fif("grid_raw.fif", _rename_all(ctx.raw, "A{}")[0].rename_channels(
        lambda n: n if not n.startswith("A") else f"A{int(n[1:]) + 1}")))


# --- option values
@case("predict-stride-zero", "predict", "option values", 1, "--stride must be a positive number", "0.0")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--stride", "0")


@case("predict-stride-negative", "predict", "option values", 1, "--stride must be a positive number", "-2.5")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--stride", "-2.5")


@case("predict-stride-not-a-number", "predict", "option values", 2, "Invalid value", "--stride", typer=True)
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--stride", "abc")


@case("predict-max-interpolated-negative", "predict", "option values", 1, "--max-interpolated must be a non-negative")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--allow-missing", "--max-interpolated", "-1")


@case("predict-format-unknown", "predict", "option values", 1, "--format must be one of", "csv", "'xml'")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--format", "xml")


@case("predict-precision-unknown", "predict", "option values", 1, "--precision must be one of", "fp16")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), "--precision", "fp16")


@case("predict-device-unknown", "predict", "option values", 1, "--device", "tpu0", "cpu")
def _(ctx):
    return ["predict", ctx.edf("rec.edf"), "--model", ctx.model, "--device", "tpu0"]


# --- models
@case("predict-model-missing", "predict", "models", 1, "nomodel", "no such model directory")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), model=ctx.d / "nomodel")


@case("predict-model-empty-dir", "predict", "models", 1, "no model in", "save_pretrained")
def _(ctx):
    (ctx.d / "empty").mkdir()
    return _predict(ctx, ctx.edf("rec.edf"), model=ctx.d / "empty")


@case("predict-truncated-safetensors", "predict", "models", 1, "model.safetensors", "not a readable safetensors",
      "rerun the training")
def _(ctx):
    m = ctx.model_copy()
    truncate(m / "model.safetensors", 0.6)
    ctx.earlier("rec.predictions.csv")
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-fake-safetensors", "predict", "models", 1, "model.safetensors", "not a readable safetensors")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").write_text("this is not a tensor file\n" * 20)
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-pickle-checkpoint", "predict", "models", 1, "model.safetensors", "not a readable safetensors")
def _(ctx):
    m = ctx.model_copy()
    # a torch.save (pickle) file under the safetensors name: refused, never unpickled
    with open(m / "model.safetensors", "wb") as fh:
        torch.save({"w": torch.zeros(3)}, fh)
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-config-bad-json", "predict", "models", 1, "config.json", "not readable JSON", "re-export")
def _(ctx):
    m = ctx.model_copy()
    (m / "config.json").write_text('{"d_model": 16,')
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-config-unknown-key", "predict", "models", 1, "config.json", "does not describe a NeurIPT",
      "warp_factor")
def _(ctx):
    m = ctx.model_copy()
    cfg = json.loads((m / "config.json").read_text())
    cfg["warp_factor"] = 9
    (m / "config.json").write_text(json.dumps(cfg))
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


def _check_mismatch(ctx, res):
    assert len(res.err.splitlines()) <= 60, res.err  # summarised, not thousands of lines


@case("predict-config-shape-mismatch", "predict", "models", 1, "does not match the model", "shape mismatches",
      "d_model", check=_check_mismatch)
def _(ctx):
    m = ctx.model_copy()
    cfg = json.loads((m / "config.json").read_text())
    cfg["d_model"], cfg["d_ff"] = 32, 32
    (m / "config.json").write_text(json.dumps(cfg))
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-metadata-bad-json", "predict", "models", 1, "neuript.json", "not readable JSON")
def _(ctx):
    m = ctx.model_copy()
    (m / "neuript.json").write_text("{")
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-metadata-newer-format", "predict", "models", 1, "format version 99", "upgrade neuript")
def _(ctx):
    m = ctx.model_copy()
    meta = json.loads((m / "neuript.json").read_text())
    meta["format_version"] = 99
    (m / "neuript.json").write_text(json.dumps(meta))
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-metadata-unknown-preprocessing", "predict", "models", 1, "neuript.json", "unknown PreprocessConfig",
      "notch_q")
def _(ctx):
    m = ctx.model_copy()
    meta = json.loads((m / "neuript.json").read_text())
    meta["preprocessing"]["notch_q"] = 30
    (m / "neuript.json").write_text(json.dumps(meta))
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


def _check_no_meta(ctx, res):
    assert len(_csv(ctx, "rec.predictions.csv")) == 12
    assert "records no preprocessing" in res.text


@case("predict-metadata-missing-warns", "predict", "models", 0, check=_check_no_meta)
def _(ctx):
    m = ctx.model_copy()
    (m / "neuript.json").unlink()
    ctx.new_ok.append(ctx.d / "rec.predictions.csv")
    return _predict(ctx, ctx.edf("rec.edf"), model=m)


@case("predict-pretraining-run-as-model", "predict", "models", 1, "pretraining export", "neuript finetune")
def _(ctx):
    return _predict(ctx, ctx.edf("rec.edf"), model=ctx.pretrained)


# --- output locations
def _full_disk(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@case("predict-disk-full", "predict", "output location", 1, "cannot write", "out.csv", "the disk is full",
      "earlier outputs are unchanged")
def _(ctx):
    ctx.earlier("out.csv")
    ctx.monkeypatch.setattr(tempfile, "mkstemp", _full_disk)
    return _predict(ctx, ctx.edf("rec.edf"), "--out", ctx.d / "out.csv")


@case("predict-read-only-at-rename", "predict", "output location", 1, "cannot write", "out.csv", "--out")
def _(ctx):
    ctx.earlier("out.csv")
    real = os.replace

    def ro(src, dst, *a, **k):
        if Path(dst).name == "out.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        return real(src, dst, *a, **k)

    ctx.monkeypatch.setattr(os, "replace", ro)
    return _predict(ctx, ctx.edf("rec.edf"), "--out", ctx.d / "out.csv")


@case("predict-disk-full-while-writing", "predict", "output location", 1, "cannot write", "out.csv",
      "the disk is full")
def _(ctx):
    ctx.earlier("out.csv")

    def full_write(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.monkeypatch.setattr(pd.DataFrame, "to_csv", full_write)
    return _predict(ctx, ctx.edf("rec.edf"), "--out", ctx.d / "out.csv")


# ============================================================================================== embed
@case("embed-out-is-input", "embed", "never lose a file", 1, "is the input recording itself")
def _(ctx):
    rec = ctx.fif("keep_raw.fif")
    return _embed(ctx, rec, "--out", rec)


def _check_embed_stem(ctx, res):
    emb = np.load(ctx.d / "rec.v1_raw.embeddings.npy")
    assert emb.shape[0] == 6 and np.isfinite(emb).all()
    assert np.load(ctx.d / "rec.v1_raw.embeddings.times.npy").shape == (6,)


@case("embed-default-name-keeps-stem", "embed", "file names", 0, check=_check_embed_stem)
def _(ctx):
    ctx.earlier("rec.v2_raw.embeddings.npy")
    ctx.new_ok += [ctx.d / "rec.v1_raw.embeddings.npy", ctx.d / "rec.v1_raw.embeddings.times.npy"]
    return _embed(ctx, ctx.fif("rec.v1_raw.fif"))


@case("embed-stride-zero", "embed", "option values", 1, "--stride must be a positive number")
def _(ctx):
    return _embed(ctx, ctx.fif("rec_raw.fif"), "--stride", "0")


@case("embed-truncated-edf", "embed", "corrupt file", 1, "cut.edf", "truncated", "re-download")
def _(ctx):
    truncate(ctx.edf("cut.edf"), 0.3)
    ctx.earlier("cut.embeddings.npy")
    return _embed(ctx, ctx.d / "cut.edf")


@case("embed-unknown-labels", "embed", "channel labels", 1, "odd_raw.fif", "chan00", "--rename")
def _(ctx):
    return _embed(ctx, ctx.fif("odd_raw.fif", _rename_all(ctx.raw)[0]))


@case("embed-disk-full", "embed", "output location", 1, "cannot write", "emb.npy", "the disk is full")
def _(ctx):
    ctx.earlier("emb.npy")
    ctx.monkeypatch.setattr(tempfile, "mkstemp", _full_disk)
    return _embed(ctx, ctx.fif("rec_raw.fif"), "--out", ctx.d / "emb.npy")



# ============================================================================================== prepare
def _prep(src, out, *extra, recipe="eegmat"):
    return ["prepare", recipe, "--source", src, "--out", out, "-q", "--set", "subjects=0", *extra]


def _prep_table(manifest, out, *extra):
    return ["prepare", "table", "--manifest", manifest, "--out", out, "-q", *extra]


def _src(ctx, **files) -> Path:
    """A source folder: name → path of a file to copy (or bytes)."""
    s = ctx.d / "src"
    s.mkdir(exist_ok=True)
    for name, what in files.items():
        (s / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, bytes):
            (s / name).write_bytes(what)
        else:
            shutil.copyfile(what, s / name)
    return s


@case("prepare-truncated-edf-others-kept", "prepare", "corrupt file", 1, "Subject00_1.edf", "truncated",
      "rerun the same command", check=lambda ctx, res: _check_one_shard(ctx, "eegmat_Subject00_2"))
def _(ctx):
    eeg = ctx.shared / "eegmat"
    src = _src(ctx, **{"Subject00_1.edf": eeg / "Subject00_1.edf", "Subject00_2.edf": eeg / "Subject00_2.edf"})
    truncate(src / "Subject00_1.edf", 0.5)
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


def _check_one_shard(ctx, rid):
    shards = sorted(p.stem for p in (ctx.d / "store" / "shards").glob("*.npy"))
    assert shards == [rid], shards


@case("prepare-mv-units", "prepare", "units", 1, "Subject00_2.edf", "unit error", "physical dimension")
def _(ctx):
    src = _src(ctx, **{"Subject00_2.edf": ctx.shared / "eegmat" / "Subject00_2.edf"})
    edf_set_units(src / "Subject00_2.edf", "mV")
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


@case("prepare-non-voltage-unit", "prepare", "units", 1, "EEG Fp2", "not a voltage", "physical dimension")
def _(ctx):
    src = _src(ctx, **{"Subject00_2.edf": ctx.shared / "eegmat" / "Subject00_2.edf"})
    edf_set_units(src / "Subject00_2.edf", "BS", only=1)
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


@case("prepare-one-channel-wrong-gain", "prepare", "units", 1, "gain_raw.fif", "electrode O2", "gain")
def _(ctx):
    m = ctx.table(ctx.fif("gain_raw.fif", scaled(ctx.raw, ["EEG O2"], 1e3)))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store", "--dtype", "float32")


@case("prepare-rate-below-band", "prepare", "sampling rate", 1, "50 Hz", "30 Hz", "--set h_freq")
def _(ctx):
    m = ctx.table(ctx.fif("r50_raw.fif", ctx.raw.copy().resample(50.0, verbose="error")))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


def _check_prep_flat(ctx, res):
    man = json.loads((ctx.d / "store" / "manifest.json").read_text())
    assert man["summary"]["rejected"]["flat"] >= 2, man["summary"]
    assert "flat=" in res.out


@case("prepare-flat-electrode-rejected", "prepare", "flat electrode", 0, check=_check_prep_flat)
def _(ctx):
    m = ctx.table(_flat_fp1(ctx, "flat_raw.fif"))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


def _check_prep_short(ctx, res):
    assert "gave no windows" in res.err and "shorter than one 4 s window" in res.text
    assert "recordings without windows (1)" in res.out


@case("prepare-short-recording-named", "prepare", "short recording", 0, "short_raw.fif", check=_check_prep_short)
def _(ctx):
    m = ctx.table(ctx.fif("short_raw.fif", ctx.raw.copy().crop(0, 3.0)), ctx.fif("long_raw.fif"))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


def _check_prep_upper(ctx, res):
    _check_one_shard(ctx, "eegmat_Subject00_2")
    assert "unused files in the source: 1 recording(s) the recipe does not list: extra/other_raw.fif" in res.out


@case("prepare-upper-case-and-unused-files", "prepare", "file names", 0, check=_check_prep_upper)
def _(ctx):
    src = _src(ctx, **{"Subject00_2.EDF": ctx.shared / "eegmat" / "Subject00_2.edf",
                       "notes.txt": b"session notes", "extra/other_raw.fif": b""})
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


@case("prepare-hypnogram", "prepare", "annotation-only file", 1, "Hypnogram.edf", "no EEG channels", "PSG")
def _(ctx):
    m = ctx.table(ctx.edf("SC4001EC-Hypnogram.edf", ctx.shared / "formats" / "SC4001EC-Hypnogram.edf"))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


@case("prepare-unknown-labels", "prepare", "channel labels", 1, "odd_raw.fif", "chan00", "--rename")
def _(ctx):
    m = ctx.table(ctx.fif("odd_raw.fif", _rename_all(ctx.raw)[0]))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


def _check_prep_renamed(ctx, res):
    man = json.loads((ctx.d / "store" / "manifest.json").read_text())
    assert man["rename"]["chan00"] == "EEG Fp1" and man["summary"]["n_windows"] == 7


@case("prepare-rename-mapping", "prepare", "channel labels", 0, check=_check_prep_renamed)
def _(ctx):
    raw, odd = _rename_all(ctx.raw)
    (ctx.d / "map.json").write_text(json.dumps({new: old for old, new in odd.items()}))
    m = ctx.table(ctx.fif("odd_raw.fif", raw))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store", "--rename", ctx.d / "map.json")


@case("prepare-rename-without-equals", "prepare", "channel labels", 2, "OLD=NEW")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--rename", "Fp1")


@case("prepare-duplicate-labels", "prepare", "channel labels", 1, "Subject00_2.edf", "'EEG Fp1' (signals 1, 2)",
      "duplicate channel labels", "header")
def _(ctx):
    src = _src(ctx, **{"Subject00_2.edf": ctx.shared / "eegmat" / "Subject00_2.edf"})
    edf_set_labels(src / "Subject00_2.edf", {"EEG Fp2": "EEG Fp1"})
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


@case("prepare-non-ascii-label", "prepare", "channel labels", 1, "Subject00_2.edf", "EEG Fp1\u00e9", "--rename")
def _(ctx):
    src = _src(ctx, **{"Subject00_2.edf": ctx.shared / "eegmat" / "Subject00_2.edf"})
    edf_set_labels(src / "Subject00_2.edf", {"EEG Fp1": "EEG Fp1\u00e9"})
    ctx.new_ok.append(ctx.d / "store")
    return _prep(src, ctx.d / "store")


@case("prepare-grid-cap", "prepare", "channel labels", 1, "grid_raw.fif", "labelled as a grid", "--rename")
def _(ctx):
    raw = _rename_all(ctx.raw, "A{}")[0].rename_channels(lambda n: n if not n.startswith("A") else f"A{int(n[1:]) + 1}")
    m = ctx.table(ctx.fif("grid_raw.fif", raw))
    ctx.new_ok.append(ctx.d / "store")
    return _prep_table(m, ctx.d / "store")


@case("prepare-other-settings-refused", "prepare", "stores", 2, "other settings", "--overwrite", "another --out")
def _(ctx):
    st = ctx.store_copy()
    return ["prepare", "eegmat", "--source", ctx.shared / "eegmat", "--out", st, "-q",
            "--set", "subjects=0,1,2,28", "--window-s", "4"]


@case("prepare-out-not-a-store", "prepare", "stores", 2, "is not a window store", "another --out")
def _(ctx):
    ctx.earlier("results/old.predictions.csv")
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "results")


@case("prepare-out-corrupt-manifest", "prepare", "stores", 2, "manifest.json", "not valid JSON", "--overwrite")
def _(ctx):
    st = ctx.store_copy()
    (st / "manifest.json").write_text('{"format": ')
    return _prep(ctx.shared / "eegmat", st)


@case("prepare-dtype-unknown", "prepare", "option values", 2, "float16", "float64")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--dtype", "float64")


@case("prepare-window-zero", "prepare", "option values", 2, "window_s", "positive")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--window-s", "0")


@case("prepare-window-negative", "prepare", "option values", 2, "window_s", "positive")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--window-s", "-5")


@case("prepare-stride-zero", "prepare", "option values", 2, "stride_s", "positive")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--set", "stride_s=0")


@case("prepare-n-jobs-zero", "prepare", "option values", 2, "--n-jobs", "positive")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--n-jobs", "0")


@case("prepare-unknown-setting", "prepare", "option values", 2, "unknown preprocessing option", "l_freqq")
def _(ctx):
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store", "--set", "l_freqq=0.5")


@case("prepare-unknown-recipe", "prepare", "option values", 2, "unknown recipe", "eegmatt", "eegmat")
def _(ctx):
    return ["prepare", "eegmatt", "--source", ctx.d, "--out", ctx.d / "store"]


@case("prepare-source-missing", "prepare", "option values", 2, "nosuchdir", "does not exist")
def _(ctx):
    return _prep(ctx.d / "nosuchdir", ctx.d / "store")


@case("prepare-disk-full", "prepare", "output location", 1, "cannot write", "manifest.json", "the disk is full")
def _(ctx):
    ctx.monkeypatch.setattr(tempfile, "mkstemp", _full_disk)
    ctx.new_ok.append(ctx.d / "store")  # the empty folders it made
    return _prep_table(ctx.table(ctx.fif("rec_raw.fif")), ctx.d / "store")


# ============================================================================================== info
def _info(store):
    return ["info", store]


@case("info-truncated-shard", "info", "stores", 2, "bytes but", "were written", "rerun the `neuript prepare`")
def _(ctx):
    st = ctx.store_copy()
    truncate(sorted((st / "shards").glob("*.npy"))[0], 0.5)
    return _info(st)


@case("info-missing-shard", "info", "stores", 2, ".npy is missing", "rerun the `neuript prepare`")
def _(ctx):
    st = ctx.store_copy()
    sorted((st / "shards").glob("*.npy"))[1].unlink()
    return _info(st)


@case("info-corrupt-manifest", "info", "stores", 2, "manifest.json is not valid JSON", "neuript prepare")
def _(ctx):
    st = ctx.store_copy()
    (st / "manifest.json").write_text("{")
    return _info(st)


@case("info-manifest-counts-edited", "info", "stores", 2, "manifest.json counts", "neuript prepare")
def _(ctx):
    st = ctx.store_copy()
    m = json.loads((st / "manifest.json").read_text())
    m["summary"]["n_windows"] += 7
    (st / "manifest.json").write_text(json.dumps(m))
    return _info(st)


@case("info-corrupt-shard-metadata", "info", "stores", 2, "is not valid shard metadata", "neuript prepare")
def _(ctx):
    st = ctx.store_copy()
    sorted((st / "shards").glob("*.json"))[0].write_text("{oops")
    return _info(st)


def _check_windows_rebuilt(ctx, res):
    assert "disagrees with the shard metadata" in res.text
    n = json.loads((ctx.d / "store_eegmat" / "manifest.json").read_text())["summary"]["n_windows"]
    assert f"windows    {n} x 5 s" in res.out


@case("info-edited-window-table-rebuilt", "info", "stores", 0, check=_check_windows_rebuilt)
def _(ctx):
    st = ctx.store_copy()
    lines = (st / "windows.csv").read_text().splitlines()
    (st / "windows.csv").write_text("\n".join(lines[:-5]) + "\n")
    ctx.modify_ok.append(st / "windows.csv")
    return _info(st)


@case("info-not-a-store", "info", "stores", 2, "is not a neuript window store", "neuript prepare")
def _(ctx):
    ctx.earlier("notastore/a.csv")
    return _info(ctx.d / "notastore")


@case("info-newer-store-format", "info", "stores", 2, "unsupported store format", "v99", "upgrade neuript")
def _(ctx):
    st = ctx.store_copy()
    m = json.loads((st / "manifest.json").read_text())
    m["version"] = 99
    (st / "manifest.json").write_text(json.dumps(m))
    return _info(st)


# ============================================================================================== finetune
def _ft(ctx, store, out, *extra):
    return ["finetune", store, "--out", out, "--device", "cpu", "--epochs", "1", "--batch-size", "8",
            "--precision", "fp32", "--model-set", "d_model=16", "--model-set", "n_heads=2", "--model-set",
            "d_ff=16", "--model-set", "expert_hidden=8", "--model-set", "shared_hidden=16", *extra]


@case("finetune-finished-run-other-settings", "finetune", "runs", 1, "--overwrite", "another --out", "loss")
def _(ctx):
    run = ctx.run_copy()
    return ["finetune", ctx.stores["eegmat"], "--out", run, "--pretrained", ctx.pretrained, "--device", "cpu",
            "--epochs", "2", "--batch-size", "16", "--seeds", "0,1", "--loss", "ce"]


@case("finetune-batch-size-zero", "finetune", "option values", 1, "--batch-size must be a positive integer")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--batch-size", "0")


@case("finetune-epochs-negative", "finetune", "option values", 1, "--epochs must be a positive integer")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--epochs", "-1")


@case("finetune-micro-batch-zero", "finetune", "option values", 1, "--micro-batch", "positive")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--micro-batch", "0")


@case("finetune-seeds-not-integers", "finetune", "option values", 2, "--seeds expects comma-separated integers",
      typer=True)
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--seeds", "a,b")


@case("finetune-loss-unknown", "finetune", "option values", 1, "--loss must be one of", "focal")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--loss", "focal")


@case("finetune-cv-unknown", "finetune", "option values", 1, "--cv", "lopo")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--cv", "lopo")


@case("finetune-pretrained-missing", "finetune", "models", 1, "nopt", "neuript pretrain")
def _(ctx):
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--pretrained", ctx.d / "nopt")


@case("finetune-store-not-a-store", "finetune", "stores", 1, "is not a neuript window store", "neuript prepare")
def _(ctx):
    (ctx.d / "recs").mkdir()
    return _ft(ctx, ctx.d / "recs", ctx.d / "ft")


@case("finetune-truncated-shard", "finetune", "stores", 1, "bytes but", "rerun the `neuript prepare`")
def _(ctx):
    st = ctx.store_copy()
    truncate(sorted((st / "shards").glob("*.npy"))[0], 0.5)
    return _ft(ctx, st, ctx.d / "ft")


@case("finetune-edited-shard", "finetune", "stores", 1, "does not match the checksum", "neuript prepare")
def _(ctx):
    st = ctx.store_copy()
    for npy in (st / "shards").glob("*.npy"):  # every shard: whichever the first batch reads
        arr = np.load(npy)
        arr[..., :4] += 3.0
        np.save(npy, arr)
    ctx.new_ok.append(ctx.d / "ft")
    return _ft(ctx, st, ctx.d / "ft")


@case("finetune-tensorboard-missing", "finetune", "optional dependency", 1, "pip install 'neuript[tensorboard]'")
def _(ctx):
    real_import = builtins.__import__

    def no_tb(name, *args, **kwargs):
        if name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")
        return real_import(name, *args, **kwargs)

    ctx.monkeypatch.setattr(builtins, "__import__", no_tb)
    ctx.new_ok.append(ctx.d / "ft")
    return _ft(ctx, ctx.stores["eegmat"], ctx.d / "ft", "--tensorboard")


# ============================================================================================== pretrain
def _pt(ctx, store, out, *extra):
    return ["pretrain", store, "--out", out, "--device", "cpu", "--epochs", "1", "--max-steps", "2",
            "--batch-size", "8", "--precision", "fp32", "--model-set", "d_model=16", "--model-set", "n_heads=2",
            *extra]


@case("pretrain-batch-size-zero", "pretrain", "option values", 1, "--batch-size must be a positive integer")
def _(ctx):
    return _pt(ctx, ctx.stores["eegmmidb"], ctx.d / "pt", "--batch-size", "0")


@case("pretrain-max-steps-zero", "pretrain", "option values", 1, "--max-steps must be a positive integer")
def _(ctx):
    return _pt(ctx, ctx.stores["eegmmidb"], ctx.d / "pt", "--max-steps", "0")


@case("pretrain-masking-unknown", "pretrain", "option values", 1, "--masking must be one of", "block")
def _(ctx):
    return _pt(ctx, ctx.stores["eegmmidb"], ctx.d / "pt", "--masking", "block")


@case("pretrain-store-missing", "pretrain", "stores", 1, "nostore", "neuript prepare")
def _(ctx):
    return _pt(ctx, ctx.d / "nostore", ctx.d / "pt")


@case("pretrain-existing-run-needs-resume", "pretrain", "runs", 1, "already holds a pretraining checkpoint",
      "--resume")
def _(ctx):
    run = copy_tree(ctx.pretrained, ctx.d / "pt")
    return ["pretrain", ctx.stores["eegmmidb"], "--out", run, "--device", "cpu", "--epochs", "1", "--max-steps",
            "3", "--batch-size", "8"]


@case("pretrain-init-missing", "pretrain", "models", 1, "noinit", "no such pretraining run", "neuript pretrain")
def _(ctx):
    return _pt(ctx, ctx.stores["eegmmidb"], ctx.d / "pt", "--init", ctx.d / "noinit")


@case("pretrain-truncated-shard", "pretrain", "stores", 1, "bytes but", "rerun the `neuript prepare`")
def _(ctx):
    st = ctx.store_copy("eegmmidb")
    truncate(sorted((st / "shards").glob("*.npy"))[0], 0.5)
    return _pt(ctx, st, ctx.d / "pt")


# ============================================================================================== evaluate
@case("evaluate-not-a-run", "evaluate", "runs", 1, "is not a fine-tuning run", "neuript finetune")
def _(ctx):
    ctx.earlier("notrun/report.json")
    return ["evaluate", ctx.d / "notrun", "--device", "cpu"]


@case("evaluate-baseline-missing", "evaluate", "runs", 1, "nobase.json", "not found", "neuript baseline")
def _(ctx):
    run = ctx.run_copy()
    return ["evaluate", run, "--device", "cpu", "--baseline", ctx.d / "nobase.json"]


@case("evaluate-baseline-bad-json", "evaluate", "runs", 1, "base.json", "cannot read the baseline file")
def _(ctx):
    run = ctx.run_copy()
    (ctx.d / "base.json").write_text("{\"method\": ")
    return ["evaluate", run, "--device", "cpu", "--baseline", ctx.d / "base.json"]


@case("evaluate-split-empty", "evaluate", "runs", 1, "split 'holdout'", "has no windows")
def _(ctx):
    return ["evaluate", ctx.run_copy(), "--device", "cpu", "--split", "holdout"]


@case("evaluate-truncated-model", "evaluate", "models", 1, "model.safetensors", "not a readable safetensors")
def _(ctx):
    run = ctx.run_copy()
    truncate(run / "seed1" / "model" / "model.safetensors", 0.5)
    return ["evaluate", run, "--device", "cpu"]


@case("evaluate-edited-store", "evaluate", "stores", 1, "does not match the checksum", "neuript prepare")
def _(ctx):
    st = ctx.store_copy()
    for npy in (st / "shards").glob("*.npy"):
        arr = np.load(npy)
        arr[..., :4] += 3.0
        np.save(npy, arr)
    return ["evaluate", ctx.run_copy(), "--device", "cpu", "--store", st]


# ============================================================================================== baseline
def _bl(ctx, *stores_and_opts):
    return ["baseline", *stores_and_opts, "--out", ctx.d / "bl"]


@case("baseline-C-not-a-number", "baseline", "option values", 2, "--C expects a positive number or cv", typer=True)
def _(ctx):
    return _bl(ctx, ctx.stores["eegmat"], "--C", "abc")


@case("baseline-C-negative", "baseline", "option values", 1, "--C must be 'cv' or a positive number")
def _(ctx):
    return _bl(ctx, ctx.stores["eegmat"], "--C", "-1")


@case("baseline-method-unknown", "baseline", "option values", 1, "--method", "wavelet")
def _(ctx):
    return _bl(ctx, ctx.stores["eegmat"], "--method", "wavelet")


@case("baseline-two-window-lengths", "baseline", "stores", 1, "different window lengths", "same window_s")
def _(ctx):
    return _bl(ctx, ctx.stores["eegmat"], ctx.stores["eegmmidb"])


@case("baseline-seeds-empty", "baseline", "option values", 1, "give at least one seed")
def _(ctx):
    return _bl(ctx, ctx.stores["eegmat"], "--seeds", ",")


@case("baseline-disk-full", "baseline", "output location", 1, "cannot write", "baseline-bandpower", "the disk is full")
def _(ctx):
    ctx.earlier("bl/baseline-bandpower.json")
    ctx.monkeypatch.setattr(tempfile, "mkstemp", _full_disk)
    return _bl(ctx, ctx.stores["eegmat"], "--C", "1.0")


# ============================================================================================== export
@case("export-format-unknown", "export", "option values", 1, "--format must be one of", "tflite")
def _(ctx):
    return ["export", ctx.model, "--format", "tflite", "--out", ctx.d / "m.onnx"]


@case("export-mode-unknown", "export", "option values", 1, "--mode must be one of", "fast")
def _(ctx):
    return ["export", ctx.model, "--mode", "fast", "--out", ctx.d / "m.onnx"]


@case("export-onnx-missing", "export", "optional dependency", 1, "pip install 'neuript[onnx]'")
def _(ctx):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime", "onnxscript"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    ctx.monkeypatch.setattr(builtins, "__import__", no_onnx)
    import importlib.util

    real_find = importlib.util.find_spec
    ctx.monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name.split(".")[0] in (
        "onnx", "onnxruntime", "onnxscript") else real_find(name, *a, **k))
    return ["export", ctx.model, "--out", ctx.d / "m.onnx"]


@case("export-pretraining-run", "export", "models", 1, "pretraining export", "neuript finetune")
def _(ctx):
    return ["export", ctx.pretrained, "--format", "pt2", "--out", ctx.d / "m.pt2"]


@case("export-verify-on-truncated", "export", "corrupt file", 1, "cut.edf", "truncated")
def _(ctx):
    truncate(ctx.edf("cut.edf"), 0.5)
    ctx.earlier("m.pt2")
    return ["export", ctx.model, "--format", "pt2", "--out", ctx.d / "m.pt2", "--verify-on", ctx.d / "cut.edf"]


@case("export-out-is-model-weights", "export", "never lose a file", 1, "model.safetensors", "--out")
def _(ctx):
    m = ctx.model_copy()
    return ["export", m, "--format", "pt2", "--out", m / "model.safetensors", "--no-verify"]


@case("export-truncated-model", "export", "models", 1, "model.safetensors", "not a readable safetensors")
def _(ctx):
    m = ctx.model_copy()
    truncate(m / "model.safetensors", 0.5)
    return ["export", m, "--format", "pt2", "--no-verify"]


# ---------------------------------------------------------------------------------------------- the runner
@pytest.fixture()
def no_unpickling(monkeypatch):
    """No code path may unpickle (a checkpoint, a store, a model): pickle and torch.load raise."""

    def refuse(*a, **k):
        raise AssertionError("a code path unpickled data")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_hostile_input(c: Case, tmp_path, monkeypatch, no_unpickling, eegmat_edf, base_raw, finetuned, pretrained,
                       stores, shared_data, earlier_predictions):
    d = tmp_path / "case"
    d.mkdir()
    ctx = Ctx(d=d, edf_src=eegmat_edf, raw=base_raw, model=finetuned, pretrained=pretrained, stores=stores,
              shared=shared_data, earlier_csv=earlier_predictions, monkeypatch=monkeypatch)
    with monkeypatch.context() as patch:
        ctx.monkeypatch = patch
        argv = c.build(ctx)
        watched = (d, finetuned, pretrained, stores["eegmat"], stores["eegmmidb"])
        before = snapshot(*watched)
        res = run_cli(*argv)
    after = snapshot(*watched)
    text = res.text
    assert res.code == c.code, f"exit {res.code}, expected {c.code}:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    if c.code != 0 and not c.typer:
        assert "error:" in text, text
    low = text.lower()
    missing = [w for w in c.expect if w.lower() not in low]
    assert not missing, f"output lacks {missing}:\n{text}"
    diff = changed(before, after)

    def allowed(path: str, roots) -> bool:
        return any(Path(path) == Path(r) or Path(r) in Path(path).parents for r in roots)

    assert not diff["removed"], diff
    assert all(allowed(p, ctx.modify_ok) for p in diff["modified"]), diff
    assert all(allowed(p, ctx.new_ok) for p in diff["added"]), diff  # no temporary file, no stray output
    for p in ctx.new_ok:
        if c.code == 0 and Path(p).suffix:
            assert Path(p).is_file(), f"{p} was not written"
    if c.check is not None:
        c.check(ctx, res)


def test_enough_cases_for_every_verb():
    verbs = {c.verb for c in CASES}
    assert verbs >= {"prepare", "info", "finetune", "evaluate", "baseline", "predict", "embed", "export", "pretrain"}
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------------- beyond the table
def test_real_process_exit_codes(tmp_path, eegmat_edf, finetuned):
    """The console script itself (a real process): a user error is one line and exit 1, an argument typer
    rejects is exit 2, neither shows a traceback."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("neuript")
    rec = tmp_path / "cut.edf"
    shutil.copyfile(eegmat_edf, rec)
    truncate(rec, 0.5)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    env.pop("NEURIPT_DEBUG", None)
    user = subprocess.run([str(exe), "predict", str(rec), "--model", str(finetuned), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert user.returncode == 1, user.stderr
    lines = [l for l in user.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and "cut.edf" in lines[-1] and "truncated" in lines[-1], user.stderr
    assert "Traceback" not in user.stderr + user.stdout
    assert not (tmp_path / "cut.predictions.csv").exists()
    arg = subprocess.run([str(exe), "predict", str(rec), "--model", str(finetuned), "--stride", "abc"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert arg.returncode == 2 and "Invalid value" in arg.stderr and "Traceback" not in arg.stderr, arg.stderr


def test_prepare_resumes_after_the_bad_file_is_fixed(tmp_path, shared_data, monkeypatch, no_unpickling):
    """A failed recording does not stop the others; fixing it and rerunning the same command prepares only it
    and leaves the finished shard byte-identical."""
    eeg = shared_data / "eegmat"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject00_1.edf", "Subject00_2.edf"):
        shutil.copyfile(eeg / name, src / name)
    truncate(src / "Subject00_1.edf", 0.5)
    out = tmp_path / "store"
    argv = ["prepare", "eegmat", "--source", src, "--out", out, "-q", "--set", "subjects=0"]
    first = run_cli(*argv)
    assert first.code == 1 and "Subject00_1.edf" in first.err and "truncated" in first.err, first.text
    assert "INCOMPLETE (rerun prepare to resume)" in first.out
    done = snapshot(out / "shards")
    assert sorted(Path(p).name for p in done) == ["eegmat_Subject00_2.json", "eegmat_Subject00_2.npy"]
    shutil.copyfile(eeg / "Subject00_1.edf", src / "Subject00_1.edf")  # the user fixes the file
    second = run_cli(*argv)
    assert second.code == 0, second.text
    assert "prepared 1 recording(s), skipped 1 already done" in second.out and "status     complete" in second.out
    after = snapshot(out / "shards")
    assert {k: v for k, v in after.items() if k in done} == done  # the finished shard was not rewritten
    assert not (out / "failed.json").exists()
