"""`neuript stream --lsl`: a real EEGMAT recording replayed as a local LSL outlet (loopback only), read back by the
LSL reader and the CLI, compared with offline `predict`."""

from __future__ import annotations

import math
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

EDF = "Subject05_2.edf"  # 62 s, 500 Hz, 21 channels: 12 windows of 5 s
SPEED = 10.0  # replay 10x faster than real time: the whole recording in ~6 s


@pytest.fixture(scope="module", autouse=True)
def lsl_loopback(tmp_path_factory):
    """Confine LSL discovery to this machine: multicast at machine scope (127.0.0.1, no IPv6) and 127.0.0.1 as a
    known peer for unicast discovery, so resolving needs no network and sees no other machine's streams. liblsl
    reads its configuration once, at the first stream object of the process, from the file LSLAPICFG names."""
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
                   "[lab]\nKnownPeers = {127.0.0.1}\n[log]\nlevel = -2\n")
    with pytest.MonkeyPatch.context() as mp:
        if "LSLAPICFG" not in __import__("os").environ:  # a CI that needs its own LSL setup keeps it
            mp.setenv("LSLAPICFG", str(cfg))
        yield cfg


def _name(tag: str) -> str:
    # unique per run: other processes on this machine may run LSL streams of their own
    return f"neuript-test-{tag}-{uuid.uuid4().hex[:8]}"


def test_missing_pylsl_is_a_one_line_install_hint(monkeypatch, capsys, tmp_path):
    from neuript import cli
    from neuript.inference.lsl import _lsl

    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'neuript\[lsl\]'"):
        _lsl()
    monkeypatch.delenv("NEURIPT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["neuript", "stream", "--model", str(tmp_path), "--lsl", "any"])
    with pytest.raises(SystemExit) as ex:
        cli.main()
    err = capsys.readouterr().err
    assert ex.value.code == 1 and "neuript[lsl]" in err and "Traceback" not in err


def test_units_come_from_the_channel_metadata_or_the_option():
    from neuript.inference.lsl import DEFAULT_UNIT, channel_scales, unit_scale

    assert DEFAULT_UNIT == "uV" and unit_scale("µV") == unit_scale("microvolts") == 1e-6
    names = ["Fp1", "Fp2", "Cz", "Pz", "Counter"]
    got = channel_scales(names, ["microvolts", None, "mV", "V", "counts"])
    np.testing.assert_allclose(got, [1e-6, 1e-6, 1e-3, 1.0, 1.0])  # none declared -> µV; non-EEG: not used
    with pytest.warns(UserWarning, match="overrides"):
        np.testing.assert_allclose(channel_scales(names, ["uV", None, "mV", None, None], unit="uV"), [1e-6] * 5)
    with pytest.raises(ValueError, match="'Cz'.*--unit"):
        channel_scales(names, [None, None, "degC", None, None])
    with pytest.raises(ValueError, match="unknown unit"):
        unit_scale("furlongs")


def test_unknown_stream_is_a_clear_error():
    from neuript.inference.lsl import resolve_stream

    with pytest.raises(ValueError, match=r"no LSL stream 'neuript-test-absent.*within 0.5 s.*KnownPeers"):
        resolve_stream("neuript-test-absent-" + uuid.uuid4().hex[:8], timeout_s=0.5)


def test_lsl_stream_equals_offline_predict(finetuned, eegmat_dir):
    import pylsl

    from neuript.inference import predict
    from neuript.inference.lsl import LSLReader, replay_outlet

    edf = eegmat_dir / EDF
    offline = predict(finetuned, edf, device="cpu")
    name = _name("eeg")
    replay = replay_outlet(edf, name, speed=SPEED)  # float32 µV, per-channel labels and units, like an amplifier
    reader = LSLReader(finetuned, name=name, marker_outlet=name + "-pred", idle_timeout_s=1.0, device="cpu")
    assert reader.sfreq == 500.0 and reader.ch_names[0] == "EEG Fp1" and set(reader.scales) == {1e-6}
    # subscribe to the marker outlet before the first window, so no marker is missed
    found = pylsl.resolve_byprop("name", name + "-pred", timeout=10)
    assert len(found) == 1 and found[0].type() == "Markers"
    markers_in = pylsl.StreamInlet(found[0], recover=True)
    markers_in.open_stream(timeout=10)

    live = pd.DataFrame(list(reader))  # samples flow once the reader opens the stream; ends 1 s after the last
    replay.wait(30)
    markers, stamps = [], []
    while True:
        m, t = markers_in.pull_sample(timeout=1.0)
        if m is None:
            break
        markers.append(m[0])
        stamps.append(t)
    reader.close()

    assert replay.n_pushed == replay.data.shape[1]
    assert len(live) == len(offline) == 12 and list(live["window"]) == list(offline["window"])
    np.testing.assert_allclose(live["start_s"], offline["start_s"])
    # Equal up to rounding: the stream carries float32 µV (the file: float64 volts) and each window is filtered as
    # its own segment with the default context (half the longest filter); measured max |diff| ~ 1e-7.
    diff = np.abs(live["prob_task"].to_numpy() - offline["prob_task"].to_numpy()).max()
    np.testing.assert_allclose(live["prob_task"], offline["prob_task"], atol=1e-5)
    assert list(live["predicted"]) == list(offline["predicted"])
    assert list(live["quality"]) == list(offline["quality"])
    # window starts in the stream's clock: one window per 5 s of signal, sent 10x faster
    np.testing.assert_allclose(np.diff(live["stream_time"]), 5.0 / SPEED, atol=1e-6)
    lat = live["latency_s"].to_numpy()
    assert np.isfinite(lat).all() and (lat >= 0).all()
    assert np.isfinite(live["delay_s"]).all() and (live["delay_s"] > 0).all()
    print(f"\nLSL: {len(live)} windows, max |prob - offline| {diff:.1e}; latency per window median "
          f"{1e3 * np.median(lat):.0f} ms, max {1e3 * lat.max():.0f} ms; delay median "
          f"{np.median(live['delay_s']):.2f} s at {SPEED:g}x")
    # one marker per window, the predicted class, stamped with the window's start
    assert markers == list(live["predicted"])
    np.testing.assert_allclose(stamps, live["stream_time"], atol=0.05)  # loopback: clock offset ~ 0


def test_stream_cli_writes_csv(finetuned, eegmat_dir, tmp_path):
    from typer.testing import CliRunner

    from neuript.cli import _register, app
    from neuript.inference import predict
    from neuript.inference.lsl import replay_outlet

    edf = eegmat_dir / EDF
    offline = predict(finetuned, edf, device="cpu")
    name = _name("cli")
    out = tmp_path / "live.csv"
    _register()
    # two windows need 10 s + 16.5 s of right context: replay 30 s at 20x
    with replay_outlet(edf, name, speed=20.0, duration_s=30.0) as replay:
        res = CliRunner().invoke(app, ["stream", "--model", str(finetuned), "--lsl", name, "--out", str(out),
                                       "--max-windows", "2", "--device", "cpu", "--timeout", "10"])
        replay.stop()
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table["window"]) == [0, 1]
    assert {"start_s", "stream_time", "prob_task", "predicted", "latency_s", "delay_s"} <= set(table.columns)
    np.testing.assert_allclose(table["prob_task"], offline["prob_task"][:2], atol=1e-5)
    assert all(math.isfinite(v) and v >= 0 for v in table["latency_s"])
