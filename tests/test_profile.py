"""`agebench.models.profile` (the library): parameter counts, GMACs against hand computations, file size,
latency, throughput; and `agebench.evaluation.profile_models`, the `agebench profile` command (JSON output,
profile sets, one-line errors)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from conftest import tasks_of

from agebench.models import create_model
from agebench.models.profile import count_params, gmacs, latency_ms, model_size_mb, profile_model, throughput

pytestmark = pytest.mark.usefixtures("one_thread")


def out_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def conv_macs(c_in: int, c_out: int, kernel: int, out: int, groups: int = 1) -> int:
    """MACs of a k×k convolution producing an out×out map: C_out · (C_in/groups) · k² · out²."""
    return c_out * (c_in // groups) * kernel * kernel * out * out


# ---- GMACs against the formula -------------------------------------------------------------------
def test_gmacs_plain_conv_model_matches_hand_computation():
    """Levi–Hassner, 227×227, 8 age classes: three convs and three FC layers."""
    s1 = out_size(227, 7, 4)            # 56
    p1 = out_size(s1, 3, 2)             # 27
    p2 = out_size(p1, 3, 2)             # 13  (conv2 keeps 27 with pad 2)
    p3 = out_size(p2, 3, 2)             # 6   (conv3 keeps 13 with pad 1)
    convs = conv_macs(3, 96, 7, s1) + conv_macs(96, 256, 5, p1) + conv_macs(256, 384, 3, p2)
    fcs = p3 * p3 * 384 * 512 + 512 * 512 + 512 * 8
    model = create_model("levi_hassner", tasks_of(["age"]), input_size=227)
    count = gmacs(model, 227)
    assert (s1, p1, p2, p3) == (56, 27, 13, 6)
    assert count.total == pytest.approx((convs + fcs) / 1e9, rel=1e-9)
    assert count.total == pytest.approx(0.649017344, rel=1e-9)
    assert count.per_module["trunk"] == pytest.approx(convs / 1e9, rel=1e-9)
    assert count.per_module["shared"] + count.per_module["heads"] == pytest.approx(fcs / 1e9, rel=1e-9)


def test_gmacs_depthwise_separable_model_matches_hand_computation():
    """LMTCNN-1-1, 227×227, age (8) + gender (2): depthwise convs cost C·k²·out², not C²·k²·out²."""
    s1 = out_size(227, 7, 4)            # 56
    p1 = out_size(s1, 3, 2)             # 27
    s2 = out_size(p1, 3, 2, 1)          # 14: the second block's stride-2 depthwise conv
    p2 = out_size(s2, 3, 2)             # 6
    convs = (conv_macs(3, 96, 7, s1)
             + conv_macs(96, 96, 3, p1, groups=96) + conv_macs(96, 256, 1, p1)     # block 1 dw + pw
             + conv_macs(256, 256, 3, s2, groups=256) + conv_macs(256, 384, 1, s2))  # block 2 dw + pw
    fcs = p2 * p2 * 384 * 512 + 512 * 512 + 512 * (8 + 2)
    model = create_model("lmtcnn", tasks_of(["age", "gender"]), input_size=227)
    count = gmacs(model, 227)
    assert count.total == pytest.approx((convs + fcs) / 1e9, rel=1e-9)
    assert count.total == pytest.approx(0.089865312, rel=1e-9)
    assert count.per_module == pytest.approx({"trunk": convs / 1e9, "shared": (fcs - 512 * 10) / 1e9,
                                               "heads": 512 * 10 / 1e9}, rel=1e-9)


def test_gmacs_per_module_of_separate_nets_and_functional_ops():
    # a single-child wrapper (PerTaskNets.nets) is looked through: one row per task network
    pair = create_model("levi_hassner", tasks_of(["age", "gender"]), input_size=64, separate=True)
    count = gmacs(pair, 64)
    assert set(count.per_module) == {"age", "gender"}
    assert sum(count.per_module.values()) == pytest.approx(count.total, rel=1e-9)

    class Functional(nn.Module):  # a matmul outside any child module is reported as "(other)"
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.conv(x).flatten(1)
            return y @ y.T

    count = gmacs(Functional(), 4)
    assert count.per_module["conv"] == pytest.approx(3 * 4 * 16 / 1e9)
    assert count.per_module["(other)"] == pytest.approx(64 / 1e9)


# ---- params, size, latency, throughput -------------------------------------------------------------
def test_count_params_and_size():
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    model[0].weight.requires_grad_(False)
    assert count_params(model) == (220 + 105, 20 + 105)
    big = create_model("levi_hassner_reduced", tasks_of(["age"]), input_size=227)
    total, _ = count_params(big)
    # fp32 state dict on disk: 4 bytes a parameter plus a little pickle overhead
    assert total * 4 / 1e6 <= model_size_mb(big) < total * 4 / 1e6 + 0.05


def test_size_of_levi_hassner_pair_is_seed000_table4():
    pair = create_model("levi_hassner", tasks_of(["age", "gender"]), input_size=227, separate=True)
    assert model_size_mb(pair) == pytest.approx(70.8, abs=0.1)


def test_latency_and_throughput_leave_the_model_and_threads_alone():
    model = create_model("lmtcnn", tasks_of(["age", "gender"]), input_size=64)
    model.train()
    threads = torch.get_num_threads()
    lat = latency_ms(model, 64, iters=3, warmup=1, threads=2)
    assert 0 < lat["median"] <= lat["p90"]
    lat10 = latency_ms(model, 64, iters=2, warmup=0, threads=1, oversample=True)
    assert lat10["median"] > 0
    assert throughput(model, 64, batch=4, iters=1, warmup=0) > 0
    assert model.training and torch.get_num_threads() == threads


def test_profile_model_fields_and_copy():
    model = create_model("multibranch", tasks_of(["age", "gender"]), input_size=32)
    model.train()
    figures = profile_model(model, 32, latency_iters=1, warmup=0, oversample=True, throughput_batch=2, throughput_iters=1)
    for key in ("params", "trainable_params", "gmacs", "gmacs_per_module", "size_mb", "latency_ms", "latency_p90_ms",
                "latency_oversample_ms", "throughput", "throughput_batch", "device", "threads", "torch", "input_size"):
        assert key in figures, key
    assert figures["params"] == count_params(model)[0]
    assert figures["device"].startswith("cpu") and figures["threads"] == 1
    assert model.training  # profiled a copy
    json.dumps(figures)
    cheap = profile_model(model, 32, latency_iters=1)  # what the training loop calls for each run record
    assert {"params", "gmacs", "size_mb", "latency_ms"} <= set(cheap)
    assert "throughput" not in cheap and "latency_oversample_ms" not in cheap


# ---- the command -----------------------------------------------------------------------------------
FAST = ["latency.iters=1", "latency.warmup=0", "throughput.batch=2", "throughput.iters=1"]


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert lines and lines[-1].startswith("agebench: error:"), result.stderr
    assert len(lines) == 1, result.stderr  # Hydra's own "Error executing job" line must not leak
    return lines[-1]


def test_experiment_recipe_with_profile_models(tmp_path, monkeypatch, capsys):
    """`agebench profile experiment=<recipe>` profiles the recipe's `profile_models` list."""
    import shutil

    from agebench.config.compose import compose_config
    from agebench.evaluation.command import profile_command
    from agebench.paths import conf_dir

    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf)
    (conf / "experiment" / "tiny_costs.yaml").write_text(
        "# @package _global_\n"
        "profile_models:\n"
        "  - {label: MB, overrides: [model=multibranch, data.image_size=32], paper: {params: 99200}}\n"
        "  - {label: LW3, overrides: [model=lightweight_joint, model.num_convs=3, tasks=age, data.image_size=32]}\n")
    monkeypatch.setenv("AGEBENCH_CONF_DIR", str(conf))
    overrides = ["experiment=tiny_costs", "format=json", "model.width=[2,1]", *FAST]  # model.* belongs to entries
    profile_command(compose_config(overrides, config_name="profile"), overrides)
    doc = json.loads(capsys.readouterr().out)
    assert [m["label"] for m in doc["models"]] == ["MB", "LW3"]
    assert [m["model"] for m in doc["models"]] == ["multibranch", "lightweight_joint"]
    assert doc["models"][0]["tasks"] == ["age", "gender"] and doc["models"][1]["tasks"] == ["age"]
    assert doc["models"][0]["paper"] == {"params": 99200} and doc["models"][0]["latency_iters"] == 1
    assert doc["models"][1]["model_options"]["num_convs"] == 3


@pytest.mark.slow
def test_profile_cli_prints_json_only(cli):
    result = cli("profile", "model=lmtcnn", "tasks=age_gender", "data.image_size=64", "format=json", *FAST)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    for key in ("params", "trainable_params", "gmacs", "gmacs_per_module", "size_mb", "latency_ms", "latency_p90_ms",
                "latency_oversample_ms", "latency_oversample_p90_ms", "throughput", "device", "threads", "torch"):
        assert key in doc, key
    assert doc["model"] == "lmtcnn" and doc["tasks"] == ["age", "gender"] and doc["input_size"] == 64
    assert doc["gmacs_per_module"]["trunk"] > 0


@pytest.mark.slow
def test_profile_cli_uses_paper_resolution_and_table(cli):
    result = cli("profile", "model=multibranch", "tasks=age_gender", *FAST)
    assert result.returncode == 0, result.stderr
    assert "input=64×64" in result.stdout and "GMACs" in result.stdout and "torch" in result.stdout


@pytest.mark.slow
def test_profile_set_json(cli):
    result = cli("profile", "profile_set=seed004", "format=json", *FAST)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["profile_set"] == "seed004" and len(doc["models"]) == 1
    row = doc["models"][0]
    assert row["paper"]["params"] == 99200 and abs(row["params"] - 99200) / 99200 < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("overrides,expected", [
    (["model=nope"], "unknown model 'nope'"),
    (["model=timm", "model.backbone=not_a_net"], "unknown timm backbone 'not_a_net'"),
    (["model=timm", "model.checkpoint=/nonexistent/w.pth", "data.image_size=32"], "no such file"),
])
def test_profile_cli_errors_are_one_line(cli, overrides, expected):
    assert expected in one_line_error(cli("profile", *overrides))
