"""Exporting a fine-tuned classifier for use outside neuript: ONNX (``onnxruntime``) and ``torch.export`` (``.pt2``).

The exported graph is the classifier on its own montage: input ``x`` float32 ``(batch, n_chans, n_times)`` —
windows already preprocessed as the model's training data were (channels in the model's order, filtered,
re-referenced, resampled, µV) and passed through its input transform (A-law companding) — output ``logits``
``(batch, n_outputs)``. The batch size is dynamic; channels and window length are fixed.

Two things make the model traceable without changing its PyTorch outputs:

* the MoE layers route densely while exporting (:func:`neuript.model.moe.dense_routing`: every expert on every
  token, combined with the top-k gate weights as a dense mask — numerically the sparse eval path, ``"official"``
  capacity dropping included), so the graph has no data-dependent indexing or shapes;
* the electrode encoding of the fixed montage is computed once and stored in the graph as a constant.

Nothing is changed on the model: the routing switch is restored when the export ends (tested).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["ExportableClassifier", "export_classifier", "export_program", "export_onnx", "export_torch",
           "contract_metadata", "verify_export", "load_pt2", "EXPORT_FORMATS", "ONNX_INSTALL", "DEFAULT_TOLERANCE"]

#: ``--format`` → file suffix
EXPORT_FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
#: how to install what the ONNX export needs
ONNX_INSTALL = "pip install 'neuript[onnx]'"
#: the largest |ONNX - PyTorch| logit difference :func:`export_classifier` accepts
DEFAULT_TOLERANCE = 1e-4
#: a model larger than this is written with its weights in a side file (protobuf's 2 GiB limit)
_EXTERNAL_DATA_BYTES = 1_800_000_000
_PT2_META = "neuript.json"


def _require_onnx() -> None:
    """Raise a one-line ImportError naming the install command when an ONNX package is missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}, which is not installed: {ONNX_INSTALL}")


class ExportableClassifier(nn.Module):
    """A classifier on its construction-time montage, traceable by ``torch.export`` / ONNX: ``x -> logits``.

    Holds the model (shared, not copied) and the montage constants (electrode encoding, group weights). Its
    forward is the model's eval forward; run it inside :func:`neuript.model.moe.dense_routing` for export.

    Parameters
    ----------
    model : NeurIPT
        A classifier built with a channel description (positions).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not model.positions.numel():
            raise ValueError("the model has no electrode positions; build it with chs_info / ch_names / positions")
        from neuript.inference.artifacts import input_feature_norm

        featnorm = input_feature_norm(getattr(model, "metadata", None) or {})
        if featnorm != "none":
            raise ValueError(f"the model was trained with --feature-norm {featnorm}: its head needs the feature "
                             "statistics of a whole subject or recording, which an exported single-window "
                             "program cannot compute; export a model trained with --feature-norm none")
        self.model = model
        with torch.no_grad():
            pe = model.encoder.electrode_encoding(model.positions)
        self.register_buffer("electrode_pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        features, _ = m.encoder(x, m.positions, electrode_pe=self.electrode_pe)
        pooled = m.final_layer.pool(m.pooled_features(features), m.group_weights, flatten=False)
        return m.forward_head(pooled)


def _example_input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    if not model.n_times:
        raise ValueError("the model does not record n_times; build it with n_times (or input_window_seconds)")
    gen = torch.Generator().manual_seed(0)  # a private generator: exporting must not move the global RNG
    dev = model.group_weights.device
    return (0.3 * torch.randn(batch, int(model.n_chans), int(model.n_times), generator=gen)).clamp(-1, 1).to(dev)


def export_program(model: nn.Module) -> "torch.export.ExportedProgram":
    """``torch.export`` of ``model`` (eval mode, dense MoE routing) with a dynamic batch dimension.

    The model's training flag and routing settings are restored afterwards."""
    from neuript.model.moe import dense_routing

    wrapper = ExportableClassifier(model)
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch", min=1)
        with dense_routing(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations while tracing
            return torch.export.export(wrapper, (_example_input(model),), dynamic_shapes={"x": {0: batch}})
    finally:
        model.train(was_training)


def contract_metadata(model: nn.Module, meta: dict[str, Any] | None = None) -> dict[str, str]:
    """The input / output contract of ``model`` as string key-value pairs (ONNX ``metadata_props``).

    Keys: ``ch_names``, ``positions`` (JSON lists), ``sfreq``, ``n_times``, ``n_chans``, ``n_outputs``,
    ``class_names`` (JSON list), ``output_activation`` (``sigmoid`` for a single logit: probability of the second
    class; else ``softmax``), ``input_transform`` and ``preprocessing`` (JSON, the artifact's), ``mode``,
    ``input`` / ``output`` (prose), ``neuript_version``, ``torch_version``, ``format``."""
    import neuript
    from neuript.inference.predict import _label_names
    from neuript.model.io import DEFAULT_INPUT_TRANSFORM, artifact_metadata

    meta = artifact_metadata(model) if meta is None else meta
    n_outputs = int(model.n_outputs)
    classes = _label_names(meta, 2 if n_outputs == 1 else n_outputs)
    transform = meta.get("input_transform") or DEFAULT_INPUT_TRANSFORM
    preprocessing = meta.get("preprocessing")
    if preprocessing is None:  # a model saved in Python: the defaults neuript predict would apply
        from neuript.inference.artifacts import model_input

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            preprocessing = model_input(meta).preprocessing.to_dict()
    desc = (f"x: float32 (batch, {model.n_chans}, {model.n_times}); windows of {model.n_times / model.sfreq:g} s at "
            f"{model.sfreq:g} Hz, channels in ch_names order, preprocessed as 'preprocessing' says (µV), then "
            f"passed through 'input_transform' ({json.dumps(transform)})")
    return {
        "format": "neuript-onnx/1",
        "ch_names": json.dumps(list(model.ch_names or [])),
        "positions": json.dumps(model.positions.tolist()),
        "n_chans": str(int(model.n_chans)),
        "n_times": str(int(model.n_times)),
        "sfreq": repr(float(model.sfreq)),
        "n_outputs": str(n_outputs),
        "class_names": json.dumps(classes),
        "output_activation": "sigmoid" if n_outputs == 1 else "softmax",
        "input": desc,
        "output": (f"logits: float32 (batch, {n_outputs}); " + ("sigmoid(logit) = probability of "
                   f"{classes[1]!r}" if n_outputs == 1 else "softmax over class_names")),
        "input_transform": json.dumps(transform),
        "preprocessing": json.dumps(preprocessing),
        "mode": str(model.encoder.cfg.mode),
        "neuript_version": str(neuript.__version__),
        "torch_version": str(torch.__version__),
    }


def _param_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def export_onnx(model: nn.Module, out: str | os.PathLike, *, metadata: dict[str, str] | None = None,
                opset: int | None = None) -> Path:
    """Write ``model`` as an ONNX file (dynamic batch ``x -> logits``) carrying ``metadata`` (default:
    :func:`contract_metadata`) as ``metadata_props``; returns the path."""
    _require_onnx()
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program = export_program(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        onnx_program = torch.onnx.export(program, (), None, input_names=["x"], output_names=["logits"],
                                         opset_version=opset, verbose=False)
    proto = onnx_program.model_proto
    # name the dynamic dimension "batch" (torch.export calls it s<N>) wherever it appears
    sym = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if sym and dim.dim_param == sym:
                dim.dim_param = "batch"
    del proto.metadata_props[:]
    for key, value in (metadata if metadata is not None else contract_metadata(model)).items():
        proto.metadata_props.add(key=str(key), value=str(value))
    proto.doc_string = "NeurIPT EEG classifier exported by neuript; see metadata_props for the input contract"
    external = _param_bytes(model) > _EXTERNAL_DATA_BYTES
    tmp = out.with_name(out.name + ".tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=external, location=out.name + ".data")
    onnx.checker.check_model(str(tmp))
    os.replace(tmp, out)
    return out


def export_torch(model: nn.Module, out: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as a ``torch.export`` archive (``.pt2``, dynamic batch), with the contract
    (:func:`contract_metadata`) stored as its extra file ``neuript.json``; read it with :func:`load_pt2`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program = export_program(model)
    meta = metadata if metadata is not None else contract_metadata(model)
    tmp = out.with_name(out.stem + ".partial.pt2")  # torch.export.save wants a .pt2 name
    torch.export.save(program, str(tmp), extra_files={_PT2_META: json.dumps(meta)})
    os.replace(tmp, out)
    return out


def load_pt2(path: str | os.PathLike):
    """A ``.pt2`` written by :func:`export_torch`: ``(callable module x -> logits, contract dict)``."""
    extra = {_PT2_META: ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra[_PT2_META] or "{}")


def _runner(path: Path, fmt: str):
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = min(4, os.cpu_count() or 1)
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda x: session.run(["logits"], {"x": x})[0]
    module, _ = load_pt2(path)

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


def verify_export(model: nn.Module, path: str | os.PathLike, windows: np.ndarray, *, fmt: str = "onnx",
                  batch_sizes: Sequence[int] = (1, 5)) -> float:
    """Largest |exported - PyTorch eval| logit difference over ``windows`` (model input: preprocessed and
    transformed, (n, C, T)), run in consecutive batches of every size in ``batch_sizes`` (both sides see the
    same batches: ``"official"`` routing depends on the batch)."""
    run = _runner(Path(path), fmt)
    x_all = np.ascontiguousarray(windows, dtype=np.float32)
    dev = model.group_weights.device
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        for bs in batch_sizes:
            for i in range(0, len(x_all), bs):
                x = x_all[i:i + bs]
                with torch.no_grad():
                    ref = model(torch.from_numpy(x).to(dev)).float().cpu().numpy()
                worst = max(worst, float(np.abs(run(x) - ref).max()))
    finally:
        model.train(was_training)
    return worst


def _synthetic_windows(model: nn.Module, meta: dict[str, Any], n: int = 8) -> np.ndarray:
    """EEG-like µV noise through the model's input transform (used when no recording is given)."""
    from neuript.inference.artifacts import input_transform

    rng = np.random.default_rng(0)
    uv = rng.standard_normal((n, int(model.n_chans), int(model.n_times))).cumsum(-1) * 2.0
    uv -= uv.mean(-1, keepdims=True)
    return input_transform(meta)(uv.astype(np.float32))


def recording_model_input(model: nn.Module, meta: dict[str, Any], recording, *, max_windows: int = 16,
                          allow_missing: bool = False) -> np.ndarray:
    """Model input for the windows of a recording (file or MNE object): the model's preprocessing, alignment
    and input transform, as ``neuript predict`` applies them."""
    from neuript.inference.artifacts import input_alignment, input_transform
    from neuript.inference.predict import _windows

    rw, _ = _windows(meta, recording, stride_s=None, allow_missing=allow_missing, rename=None)
    w = input_alignment(meta)(rw.windows)[:max_windows]
    return np.ascontiguousarray(input_transform(meta)(w), dtype=np.float32)


def export_classifier(model: str | os.PathLike | nn.Module, out: str | os.PathLike | None = None, *,
                      fmt: str = "onnx", mode: str | None = None, verify: bool = True,
                      windows: np.ndarray | None = None, recording: Any = None,
                      tolerance: float = DEFAULT_TOLERANCE, opset: int | None = None) -> dict[str, Any]:
    """Export a fine-tuned classifier (``fmt``: ``"onnx"`` or ``"pt2"``) and check it against PyTorch.

    Parameters
    ----------
    model : path or NeurIPT
        A fine-tuning run, a model directory or a hub id (loaded with :func:`~neuript.inference.artifacts.
        load_classifier`), or a classifier.
    out : path, optional
        Output file; default ``model.onnx`` / ``model.pt2`` (``model.<mode>.onnx`` with ``mode``) next to the
        model directory (in the run's ``seed<k>/``).
    mode : {"paper", "official"}, optional
        Load the weights in this encoder mode (routing, masking rule); default: the model's own.
    verify : bool
        Run the exported file (onnxruntime / ``torch.export.load``) at batch sizes 1 and 5 and compare its
        logits to the PyTorch model's; a difference above ``tolerance`` raises ``RuntimeError``.
    windows : ndarray (n, C, T), optional
        Model input to verify on (preprocessed, transformed). Default: the windows of ``recording`` if given,
        else synthetic EEG-like windows.
    recording : path or mne.io.Raw, optional
        A recording whose windows (the model's own preprocessing) are used for the check.

    Returns
    -------
    dict
        ``path``, ``format``, ``mode``, ``max_abs_diff`` (None without ``verify``), ``n_windows_checked``,
        ``metadata`` (the contract written into the file).
    """
    from neuript.inference.artifacts import load_classifier
    from neuript.model.io import artifact_metadata, locate_artifact
    from neuript.runtime import check_choice

    check_choice("format", fmt, tuple(EXPORT_FORMATS))
    if mode is not None:
        check_choice("mode", mode, ("paper", "official"))
    if fmt == "onnx":
        _require_onnx()
    directory = None
    if isinstance(model, (str, os.PathLike)):
        directory = locate_artifact(model)
        model, _ = load_classifier(directory, device="cpu", **({"mode": mode} if mode else {}))
    elif mode is not None and model.encoder.cfg.mode != mode:
        raise ValueError(f"the model is in {model.encoder.cfg.mode!r} mode; load it with mode={mode!r} "
                         "(NeurIPT.from_pretrained(path, mode=...)) or pass a path")
    meta = artifact_metadata(model)
    if out is None:
        if directory is None:
            raise ValueError("give out= when exporting a model object")
        out = Path(directory).parent / f"model{'.' + mode if mode else ''}{EXPORT_FORMATS[fmt]}"
    out = Path(out)
    contract = contract_metadata(model, meta)
    if fmt == "onnx":
        path = export_onnx(model, out, metadata=contract, opset=opset)
    else:
        path = export_torch(model, out, metadata=contract)
    result: dict[str, Any] = {"path": path, "format": fmt, "mode": model.encoder.cfg.mode, "max_abs_diff": None,
                              "n_windows_checked": 0, "metadata": contract}
    if verify:
        if windows is None:
            windows = (recording_model_input(model, meta, recording) if recording is not None
                       else _synthetic_windows(model, meta))
        diff = verify_export(model, path, windows, fmt=fmt)
        result.update(max_abs_diff=diff, n_windows_checked=int(len(windows)))
        if not diff <= tolerance:
            raise RuntimeError(f"the exported model's logits differ from PyTorch's by {diff:.3g} (> {tolerance:g}); "
                               f"{path} was written but should not be trusted — please report this")
    return result
