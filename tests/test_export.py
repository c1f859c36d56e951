"""`agebench export`: every architecture family exports to ONNX and matches PyTorch in ONNX Runtime
within 1e-4; preprocessing travels in the file's metadata; profile runtime=onnxruntime times it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli

from agebench.config.compose import compose_config
from agebench.evaluation.export import export_model, ort_session
from agebench.tasks.factory import build_tasks
from agebench.training.builders import build_model

onnx = pytest.importorskip("onnx")

FAMILIES = {  # model group → overrides of a small instance (timm: no download)
    "lmtcnn": [],
    "levi_hassner": [],
    "levi_hassner_reduced": [],
    "lightweight_joint": [],
    "multibranch": [],
    "timm": ["model.pretrained=false"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_to_onnx_and_matches_pytorch(family, tmp_path, one_thread):
    cfg = compose_config([f"model={family}", *FAMILIES[family], "tasks=age_gender_race", "data.image_size=64"])
    tasks = build_tasks(cfg.tasks, race_classes=5)
    torch.manual_seed(0)
    model = build_model(cfg, tasks).eval()
    report = export_model(model, cfg, tasks, tmp_path / "m.onnx")
    assert max(report["check"]["max_abs_diff"].values()) <= 1e-4
    # independently of the exporter's own check: another batch size, through ONNX Runtime
    x = torch.rand(3, 3, 64, 64) * 4 - 2
    with torch.no_grad():
        expected = model(x)
    got = ort_session(tmp_path / "m.onnx").run(None, {"image": x.numpy()})
    assert len(got) == 3
    for name, out in zip(["age", "gender", "race"], got):
        assert out.shape == tuple(expected[name].shape)
        np.testing.assert_allclose(out, expected[name].numpy(), atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["input_size"]) == 64 and meta["channel_order"] == "RGB" and meta["layout"] == "NCHW"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    pre = json.loads(meta["preprocessing"])
    assert pre["outputs"]["age"]["labels"][0] == "0-2" and pre["resize_to"] == int(cfg.data.load_size)


@pytest.mark.slow  # trains one tiny fold, then three CLI calls
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load is deprecated upstream
def test_export_cli_writes_a_checked_onnx_of_the_trained_weights(tmp_path, one_thread):
    from agebench.evaluation.export import rebuild
    from agebench.training.experiment import run_experiment

    run = tmp_path / "run"
    run_experiment(compose_config([*TINY, "protocol.folds=[1]", f"output_dir={run}"]), str(run))
    ckpt = run / "fold_1" / "checkpoints" / "best.ckpt"
    result = run_cli("export", f"ckpt={ckpt}")
    assert result.returncode == 0, result.stderr
    out = run / "fold_1" / "export" / "model.onnx"
    sidecar = json.loads((out.parent / "model.onnx.json").read_text())
    assert sidecar["fold"] == 1 and sidecar["check"]["atol"] == 1e-4
    model, _, _, _ = rebuild(str(ckpt))  # the trained weights, not a fresh initialisation
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        expected = model(x)
    age, gender = ort_session(out).run(None, {"image": x.numpy()})
    np.testing.assert_allclose(age, expected["age"].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(gender, expected["gender"].numpy(), atol=1e-4, rtol=0)
    # TorchScript too, with the same metadata as an extra file
    script = tmp_path / "m.pt"
    assert run_cli("export", f"ckpt={run}", "format=torchscript", f"out={script}").returncode == 0
    extra = {"agebench.json": ""}
    loaded = torch.jit.load(str(script), _extra_files=extra)
    assert json.loads(extra["agebench.json"])["channel_order"] == "RGB"
    np.testing.assert_allclose(loaded(x)[0].detach().numpy(), expected["age"].numpy(), atol=1e-5, rtol=0)
    bad = run_cli("export", f"ckpt={ckpt}", "format=tflite")
    assert bad.returncode == 2 and "choose onnx or torchscript" in bad.stderr


def test_profile_times_the_onnxruntime_model():
    result = run_cli("profile", "model=lmtcnn", "tasks=age_gender", "runtime=onnxruntime", "format=json",
                     "latency.iters=2", "latency.warmup=0", "latency.oversample=false", "throughput.batch=0")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["ort_latency_ms"] > 0 and figures["ort_latency_p90_ms"] >= figures["ort_latency_ms"]
    assert figures["onnxruntime"]


def test_rebuilding_a_trained_model_never_fetches_initial_weights(monkeypatch):
    """eval/export take every weight from the checkpoint: a run trained with model.pretrained=true must
    rebuild without downloading ImageNet weights (no network where models are evaluated, often)."""
    import timm

    from agebench.training.builders import build_trained_model

    asked = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: asked.append(k.get("pretrained")) or real(*a, **{**k, "pretrained": False}))
    cfg = compose_config(["model=timm", "model.pretrained=true", "tasks=age", "data.image_size=64"])
    build_trained_model(cfg, build_tasks(cfg.tasks))
    assert asked == [False]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(fmt, tmp_path, monkeypatch, one_thread):
    """The kernel's own ENOSPC (/dev/full): TorchScript's C++ writer used to abort the process and leave a
    .tmp file, ONNX to raise an OSError traceback."""
    from agebench.errors import UserError
    from agebench.evaluation import export

    cfg = compose_config(["model=lmtcnn", "tasks=age_gender", "data.image_size=48"])
    tasks = build_tasks(cfg.tasks)
    model = build_model(cfg, tasks).eval()
    from agebench import files

    write_synced = files.write_synced
    monkeypatch.setattr(files, "write_synced", lambda fh, data: write_synced(open("/dev/full", "wb"), data))
    out = tmp_path / f"m{export.SUFFIXES[fmt]}"
    with pytest.raises(UserError, match=rf"no space left on device writing {tmp_path}/\.?{out.name}.*the model needs \d+\.\d MB: free "
                                        r"space there or choose another out="):
        export_model(model, cfg, tasks, out, fmt)
    assert list(tmp_path.iterdir()) == []  # no partial file, no .tmp, no report


def test_export_to_a_directory_or_an_unwritable_place_is_one_line(tmp_path, one_thread):
    from agebench.errors import UserError

    cfg = compose_config(["model=lmtcnn", "tasks=age", "data.image_size=48"])
    tasks = build_tasks(cfg.tasks)
    model = build_model(cfg, tasks).eval()
    with pytest.raises(UserError, match=r"is a directory; name the file to write, e\.g\. out=.*model\.onnx"):
        export_model(model, cfg, tasks, tmp_path)
    blocker = tmp_path / "a_file"  # a place no one can create a directory in, root included
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"cannot create .*a_file.* for the export: .*choose another out="):
        export_model(model, cfg, tasks, blocker / "sub" / "m.onnx")
