"""`agebench export`: a trained checkpoint as ONNX (or TorchScript), checked against PyTorch.

    agebench export ckpt=<fold_<k>/checkpoints/best.ckpt | fold dir | run dir> [format=onnx|torchscript]
                    [out=<file>] [export.opset=17] [export.check_batch=4]

The network is rebuilt from the run's saved config (as `agebench eval` does) with the checkpoint's
weights, wrapped so that it returns one tensor per task (`age`, `gender`, `race`: raw logits, or the
normalised age for a regression head) and exported with a dynamic batch dimension. What a deployment
must do to an image before the network sees it is written into the file itself: ONNX metadata_props
(TorchScript: an `agebench.json` extra file) — input size, channel order, layout, value scaling,
mean/std, the resize-then-centre-crop, and what each output means (age bin labels, class names).

Every export is checked: the exported model runs on a fixed batch (seeded, `export.check_batch`
images, a batch size other than the tracing one, so the dynamic batch is exercised too) in ONNX Runtime
(TorchScript: torch.jit.load) and each output must match PyTorch's within `export.atol` (1e-4);
otherwise the command fails and leaves no file. All six architecture families export (LRN is an ONNX
operator; timm backbones trace through the legacy TorchScript-based exporter, which needs no extra
package); a sidecar `<out>.json` records the metadata and the check.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np

from agebench.errors import UserError
from agebench.files import atomic_write_bytes

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
TRACE_BATCH = 2


def rebuild(ckpt: str):
    """(model in eval mode, run config, trained fold) of `ckpt=`: the first finished fold it names."""
    from agebench.evaluation.trained_runs import locate_checkpoints, run_config
    from agebench.tasks.factory import build_tasks
    from agebench.training.builders import build_trained_model

    run_dir, folds = locate_checkpoints(ckpt)
    fold = folds[0]
    cfg = run_config(run_dir, fold.record)
    tasks = build_tasks(cfg.tasks, race_classes=(fold.record.get("task_outputs") or {}).get("race"))
    model = build_trained_model(cfg, tasks)
    load_model_weights(model, fold.checkpoint)
    return model.eval(), cfg, tasks, fold


def load_model_weights(model, checkpoint: Path) -> None:
    """The network's weights from a Lightning checkpoint (keys `model.*`; read as eval reads them)."""
    from agebench.evaluation.trained_runs import checkpoint_weights, fit_weights

    weights = {k.split(".", 1)[1]: v for k, v in checkpoint_weights(checkpoint).items() if k.startswith("model.")}
    fit_weights(model, weights, checkpoint)


class TaskOutputs:
    """nn.Module wrapper: image batch → tuple of the task outputs (exporters want tensors, not dicts);
    auxiliary `<task>:<tag>` outputs, used only by the training loss, are left out."""

    def __new__(cls, model, names: list[str]):
        import torch.nn as nn

        class _TaskOutputs(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.names = list(names)

            def forward(self, image):
                outputs = self.model(image)
                return tuple(outputs[n] for n in self.names)

        return _TaskOutputs().eval()


def preprocessing(cfg, tasks, class_names: dict | None = None) -> dict:
    """What to do to an image before the network, and what each output means (stored in the file);
    `class_names` (the run record's) names each classifier's outputs in order."""
    from agebench.data.augment import MEAN, STD
    from agebench.data.loading import load_size

    outputs = {}
    for t in tasks:
        kind = type(t).__name__
        if getattr(t, "bins", None) is not None and t.num_outputs > 1:
            outputs[t.name] = {"kind": "age classes (logits)", "labels": t.bins.labels}
        elif t.name == "age":
            lo, hi = t.age_range
            outputs[t.name] = {"kind": "age regression", "years": f"output * {(hi - lo) / 2:g} + {(hi + lo) / 2:g}"}
        elif t.name == "gender":
            outputs[t.name] = {"kind": f"{kind} ({getattr(t, 'loss_kind', 'ce')})", "labels": ["male", "female"]}
        else:
            names = (class_names or {}).get(t.name)
            outputs[t.name] = {"kind": f"{kind} ({getattr(t, 'loss_kind', 'ce')})", "classes": t.num_outputs,
                               **({"labels": list(names)} if names and len(names) == t.num_outputs else {})}
    size = int(cfg.data.image_size)
    return {
        "input_size": size,
        "resize_to": load_size(cfg.data),
        "crop": "center",
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "scale": "x / 255",
        "mean": list(MEAN),
        "std": list(STD),
        "normalise": "(x / 255 - mean) / std per channel",
        "recipe": f"resize the face crop to {load_size(cfg.data)}x{load_size(cfg.data)}, centre-crop {size}x{size}, "
                  f"RGB, scale to [0, 1], subtract mean, divide by std, NCHW float32",
        "outputs": outputs,
    }


def _check_batch(size: int, n: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randn(int(n), 3, size, size, generator=generator)


def export_onnx(wrapper, names: list[str], size: int, path: Path, opset: int, metadata: dict) -> None:
    import warnings

    import onnx
    import torch

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings (shape checks traced as constants)
        raw = Path(tmp) / "model.onnx"
        # the TorchScript-based exporter: LRN, timm backbones and data-dependent shape checks all trace,
        # and it needs no onnxscript (the dynamo exporter does)
        torch.onnx.export(wrapper, (_check_batch(size, TRACE_BATCH),), str(raw), dynamo=False, opset_version=int(opset),
                          input_names=["image"], output_names=names,
                          dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}})
        model = onnx.load(str(raw))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
        onnx.checker.check_model(model)
        write_bytes(path, model.SerializeToString())


def export_torchscript(wrapper, size: int, path: Path, metadata: dict) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream; tracer warnings
        traced = torch.jit.trace(wrapper, (_check_batch(size, TRACE_BATCH),), check_trace=False)
    buffer = io.BytesIO()  # serialised in memory: torch's C++ writer aborts the process on a full disk
    torch.jit.save(traced, buffer, _extra_files={"agebench.json": json.dumps(metadata)})
    write_bytes(path, buffer.getvalue())


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all; a full disk or an unwritable place is one UserError."""
    fix = f"the model needs {len(data) / 1e6:.1f} MB: free space there or choose another out="
    try:
        atomic_write_bytes(path, data, fix)
    except OSError as err:
        raise UserError(f"cannot write the exported model in {path.parent}: {err.strerror or err}; "
                        f"choose another out=") from None


def run_exported(path: Path, fmt: str, batch, threads: int | None = 1) -> list[np.ndarray]:
    """The exported file's outputs on `batch` (ONNX Runtime on CPU, or torch.jit.load)."""
    if fmt == "onnx":
        return ort_session(path, threads).run(None, {"image": batch.numpy()})
    import torch

    with torch.no_grad():
        return [o.numpy() for o in torch.jit.load(str(path))(batch)]


def ort_session(path, threads: int | None = 1):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError('ONNX Runtime is not installed; pip install -e ".[export]" (onnx, onnxruntime)') from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    source = str(path) if isinstance(path, (str, Path)) else path
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_model(model, cfg, tasks, out: Path, fmt: str = "onnx", opset: int = 17, check_batch: int = 4,
                 atol: float = 1e-4, extra: dict | None = None, class_names: dict | None = None) -> dict:
    """Export, reload, compare with PyTorch; returns the check report (also `<out>.json`)."""
    import torch

    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r}; choose onnx or torchscript")
    size = int(cfg.data.image_size)
    names = [t.name for t in tasks]
    wrapper = TaskOutputs(model.eval(), names)
    pre = preprocessing(cfg, tasks, class_names)
    metadata = {"agebench": json.dumps({"model": str(cfg.model.name), "tasks": names, **(extra or {})}),
                "preprocessing": json.dumps(pre), **{k: pre[k] if isinstance(pre[k], str) else json.dumps(pre[k])
                                                     for k in ("input_size", "mean", "std", "channel_order", "layout")}}
    if out.is_dir():
        raise UserError(f"out={out} is a directory; name the file to write, e.g. out={out / ('model' + SUFFIXES[fmt])}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out.parent} for the export: {err.strerror or err}; choose another out=") from None
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if fmt == "onnx":
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise UserError('format=onnx needs onnx and onnxruntime; pip install -e ".[export]"') from None
            export_onnx(wrapper, names, size, tmp, opset, metadata)
        else:
            export_torchscript(wrapper, size, tmp, metadata)
        batch = _check_batch(size, check_batch)
        with torch.no_grad():
            expected = [o.numpy() for o in wrapper(batch)]
        got = run_exported(tmp, fmt, batch)
        diffs = {n: float(np.abs(g - e).max()) for n, g, e in zip(names, got, expected)}
        bad = {n: d for n, d in diffs.items() if not d <= atol}
        if bad:
            raise UserError(f"the exported {fmt} model differs from PyTorch by {bad} (> {atol:g}) on the check batch; "
                            f"not written — report this with the model name ({cfg.model.name})")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    report = {"file": str(out), "format": fmt, "opset": int(opset) if fmt == "onnx" else None,
              "check": {"batch": int(check_batch), "atol": atol, "max_abs_diff": diffs}, "preprocessing": pre,
              "outputs": names, **(extra or {})}
    from agebench.results.store import atomic_write_json

    try:
        atomic_write_json(out.with_name(out.name + ".json"), report)
    except OSError as err:
        raise UserError(f"wrote {out} but not its check report {out.name}.json: {err.strerror or err}; free space "
                        f"there and rerun the export") from None
    return report


# ---------------------------------------------------------------------------------------------------
# `agebench profile runtime=onnxruntime`


def onnxruntime_latency(model, cfg, tasks, iters: int = 30, warmup: int = 5, threads: int | None = 1) -> dict:
    """Batch-1 latency (median, p90 in ms) of the model exported to ONNX and run by ONNX Runtime on CPU:
    the runtime small devices deploy with."""
    import statistics
    import time

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_model(model, cfg, tasks, path, "onnx", check_batch=2)
        session = ort_session(path, threads)
        size = int(cfg.data.image_size)
        feed = {"image": _check_batch(size, 1).numpy()}
        for _ in range(max(0, int(warmup))):
            session.run(None, feed)
        times = []
        for _ in range(max(1, int(iters))):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1e3)
    import onnxruntime

    return {"ort_latency_ms": float(statistics.median(times)), "ort_latency_p90_ms": float(np.percentile(times, 90)),
            "onnxruntime": onnxruntime.__version__}
