"""Only user errors get the one-line treatment; a bug shows its traceback and says it is one."""

from __future__ import annotations

import sys

import pytest


def _main(monkeypatch, *argv):
    from neuript import cli

    monkeypatch.setattr(sys, "argv", ["neuript", *map(str, argv)])
    cli.main()


def test_user_error_is_one_line_with_exit_code_1(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("NEURIPT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ex:
        _main(monkeypatch, "predict", tmp_path / "missing.edf", "--model", tmp_path / "no_model")
    assert ex.value.code == 1
    err = capsys.readouterr().err
    assert "error" in err and "no_model" in err and "Traceback" not in err


def test_non_positive_stride_is_a_cli_error(monkeypatch, capsys, tmp_path):
    from neuript.inference import predict

    with pytest.raises(ValueError, match="--stride must be a positive number"):
        predict("any_model_dir_not_read", tmp_path / "x.edf", stride_s=-1.0)


def test_internal_error_is_not_disguised(monkeypatch, capsys, tmp_path):
    import importlib

    # the module, not the function neuript.inference.predict that the package exports under the same name
    predict_mod = importlib.import_module("neuript.inference.predict")

    def buggy(*args, **kwargs):
        raise KeyError("some_internal_key")

    monkeypatch.setattr(predict_mod, "predict_file", buggy)
    monkeypatch.delenv("NEURIPT_DEBUG", raising=False)
    with pytest.raises(KeyError, match="some_internal_key"):
        _main(monkeypatch, "predict", tmp_path / "rec.edf", "--model", tmp_path)
    assert "internal error" in capsys.readouterr().err
