"""Fine-tuning logs (per-step CSV, optional TensorBoard) and the guard against mixing runs in one directory
(issue 14 item 4, issue 11 item 8)."""

from __future__ import annotations

import builtins
import json
import shutil

import pandas as pd
import pytest

from neuript.train.finetune import FinetuneConfig, finetune


def _cfg(stores, tiny_overrides, out, **kw):
    base = dict(stores=[str(stores["eegmat"])], out=str(out), preset="neuript_tiny", model_overrides=tiny_overrides,
                epochs=2, batch_size=16, lr=1e-3, seeds=[0], precision="fp32", max_train_batches=3, device="cpu")
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.fixture(scope="module")
def small_run(stores, tiny_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft_logs") / "run"
    finetune(_cfg(stores, tiny_overrides, out))
    return out


def test_step_and_epoch_logs_are_written(small_run):
    steps = pd.read_csv(small_run / "seed0" / "log.csv")
    assert list(steps.columns) == ["step", "epoch", "loss", "lr"]
    assert steps["step"].tolist() == list(range(1, 7))  # 2 epochs x 3 batches
    assert steps["epoch"].tolist() == [0, 0, 0, 1, 1, 1]
    assert steps["loss"].notna().all() and (steps["lr"] > 0).all()
    hist = pd.read_csv(small_run / "seed0" / "history.csv")
    assert len(hist) == 2 and {"train_loss", "val_loss", "val_balanced_accuracy", "lr"} <= set(hist.columns)


def test_other_settings_in_a_finished_run_are_refused_then_overwritten(small_run, stores, tiny_overrides, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    with pytest.raises(FileExistsError, match=r"fine-tuned with other epochs.*--overwrite"):
        finetune(_cfg(stores, tiny_overrides, out, epochs=1))
    run_json = out / "run.json"
    original = run_json.read_text()
    meta = json.loads(original)
    meta["data_fingerprint"] = "0" * 16  # as if the store had been rebuilt from other recordings
    run_json.write_text(json.dumps(meta))
    with pytest.raises(FileExistsError, match=r"other data \(the stores' contents\)"):
        finetune(_cfg(stores, tiny_overrides, out))
    run_json.write_text(original)
    # more seeds with the same settings is a resume, not a conflict
    finetune(_cfg(stores, tiny_overrides, out, seeds=[0, 1]))
    assert (out / "seed1" / "model").is_dir()
    before = (out / "seed0" / "log.csv").stat().st_mtime_ns
    finetune(_cfg(stores, tiny_overrides, out, epochs=1, overwrite=True))
    assert not (out / "seed1").exists()  # the earlier run's seeds are gone
    assert len(pd.read_csv(out / "seed0" / "log.csv")) == 3 and (out / "seed0" / "log.csv").stat().st_mtime_ns != before


def test_missing_tensorboard_gives_the_install_command(stores, tiny_overrides, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ImportError, match=r"pip install 'neuript\[tensorboard\]'"):
        finetune(_cfg(stores, tiny_overrides, tmp_path / "tb", tensorboard=True, epochs=1))


def test_run_records_the_precision_auto_resolved_to(stores, tiny_overrides, tmp_path, monkeypatch):
    from neuript import runtime

    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: False)
    out = tmp_path / "auto"
    finetune(_cfg(stores, tiny_overrides, out, precision="auto", epochs=1, max_train_batches=1))
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["precision"] == "auto" and meta["precision_used"] == "fp32"
