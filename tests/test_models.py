"""The model zoo: every family × task set trains a step; the seed papers' parameter counts; timm loading
and freezing; the multibranch aux/ensemble contract; seed 000's ten-crop oversampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from conftest import tasks_of

from agebench.errors import UserError
from agebench.models import create_model, list_models

TASK_SETS = {
    "age": ["age"],
    "gender": ["gender"],
    "age_gender": ["age", "gender"],
    "age_gender_race": ["age", "gender", "race"],
}
# family → (paper resolution, small resolution, extra options)
FAMILIES = {
    "levi_hassner": (227, 64, {}),
    "levi_hassner_reduced": (227, 64, {}),
    "lmtcnn": (227, 64, {}),
    "lightweight_joint": (64, 32, {}),
    "multibranch": (64, 32, {}),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def fake_targets(tasks, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for task in tasks:
        if task.name == "age":
            bins = torch.randint(0, 8, (n,), generator=g).float()
            years = torch.rand(n, generator=g) * 80
            out["age"] = torch.stack([bins, years], dim=1)
        else:
            classes = 2 if task.name == "gender" else 5
            out[task.name] = torch.randint(0, classes, (n, 1), generator=g).float()
    return out


def train_step(model: nn.Module, tasks, size: int, batch: int = 2) -> dict[str, torch.Tensor]:
    """Forward, the multi-task loss exactly as the LightningModule builds it, backward, one SGD step."""
    torch.manual_seed(0)
    model.train()
    x = torch.randn(batch, 3, size, size)
    targets = fake_targets(tasks, batch)
    outputs = model(x)
    aux = getattr(model, "aux_loss_weights", {}) or {}
    loss = torch.zeros(())
    for task in tasks:
        assert outputs[task.name].shape == (batch, task.num_outputs)
        loss = loss + task.loss(outputs[task.name], targets[task.name])
        for key, weight in aux.items():
            if key.split(":", 1)[0] == task.name:
                loss = loss + weight * task.loss(outputs[key], targets[task.name])
    assert torch.isfinite(loss)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.SGD(trainable, lr=0.01)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trainable)), "no parameter moved"
    return outputs


CASES = [(family, res_kind, ts) for family in FAMILIES for res_kind in ("paper", "small") for ts in TASK_SETS]


@pytest.mark.parametrize("family,res_kind,task_set", CASES, ids=[f"{f}-{r}-{t}" for f, r, t in CASES])
def test_family_builds_and_trains(family, res_kind, task_set):
    paper, small, options = FAMILIES[family]
    size = paper if res_kind == "paper" else small
    tasks = tasks_of(TASK_SETS[task_set])
    model = create_model(family, tasks, input_size=size, **options)
    train_step(model, tasks, size, batch=1 if res_kind == "paper" else 2)  # batch 1 keeps 227² steps cheap


@pytest.mark.parametrize("family", [*FAMILIES, "lmtcnn_2_1"])
def test_builds_at_32px(family):
    # quick synthetic runs and the training tests use 32×32 crops; 227-px designs must still build there
    tasks = tasks_of(["age", "gender"])
    out = create_model(family, tasks, input_size=32).eval()(torch.zeros(1, 3, 32, 32))
    assert out["age"].shape == (1, 8) and out["gender"].shape == (1, 2)


@pytest.mark.parametrize("task_set", list(TASK_SETS))
def test_timm_builds_and_trains_small(task_set):
    tasks = tasks_of(TASK_SETS[task_set])
    model = create_model("timm", tasks, input_size=64, backbone="mobilenetv3_small_100")
    train_step(model, tasks, 64)


def test_regression_and_binary_heads_train():
    # seed 003's joint regression (L2 age, mse gender) and seed 004's losses (L1 age, BCE gender)
    for age_loss, gender_loss in (("l2", "mse"), ("l1", "bce")):
        tasks = tasks_of(["age", "gender"], age={"head": "regression", "loss": age_loss}, gender={"loss": gender_loss})
        for family in ("lightweight_joint", "multibranch"):
            outputs = train_step(create_model(family, tasks, input_size=32), tasks, 32)
            assert outputs["age"].shape[1] == 1 and outputs["gender"].shape[1] == 1


def test_registry_names_and_unknown():
    assert {"levi_hassner", "levi_hassner_reduced", "lmtcnn", "lightweight_joint", "multibranch", "timm"} <= set(list_models())
    with pytest.raises(UserError, match="unknown model 'nope'"):
        create_model("nope", tasks_of(["age"]), input_size=64)
    with pytest.raises(UserError, match="lmtcnn"):
        create_model("lmtcnn", tasks_of(["age"]), input_size=64, not_an_option=1)


# ---- seed 001 Table 1/2: exact parameter counts ---------------------------------------------------
def test_seed001_reduced_levi_hassner_counts():
    bce = {"gender": {"loss": "bce"}}
    gender = create_model("levi_hassner_reduced", tasks_of(["gender"], **bce), input_size=227)
    age = create_model("levi_hassner_reduced", tasks_of(["age"]), input_size=227)
    multi = create_model("levi_hassner_reduced", tasks_of(["age", "gender"], **bce), input_size=227)
    assert n_params(gender) == 7_192_065
    assert n_params(age) == 7_192_968
    assert n_params(multi) == 14_287_625
    assert n_params(multi.trunk) == 97_408            # the "functional layer"
    # Table 1 per-layer counts
    convs = [m for m in multi.trunk if isinstance(m, nn.Conv2d)]
    assert [n_params(c) for c in convs] == [3_552, 38_464, 55_392]
    assert n_params(multi.heads["gender"]) == 7_078_016 + 16_512 + 129
    assert n_params(multi.heads["age"]) == 7_078_016 + 16_512 + 1_032


@pytest.mark.slow
def test_seed001_xception_transfer_trainable_count():
    # 8 weighted torch modules = seed 001's "last 10" Keras layers; Table 2: 31,220,873 trainable,
    # 46,586,033 total of which 54,528 are Keras-counted BN running statistics (buffers in torch)
    tasks = tasks_of(["age", "gender"], gender={"loss": "bce"})
    model = create_model("timm", tasks, input_size=227, backbone="legacy_xception", global_pool="", train_last_n=8,
                         head={"hidden": [128, 128], "dropout": 0.5})
    assert n_params(model, trainable=True) == 31_220_873
    bn_stats = sum(b.numel() for name, b in model.trunk.named_buffers() if "running" in name)
    assert n_params(model) + bn_stats == 46_586_033


# ---- seed 000: Levi–Hassner baseline and LMTCNN ----------------------------------------------------
def test_levi_hassner_baseline_counts():
    age = create_model("levi_hassner", tasks_of(["age"]), input_size=227)
    assert n_params(age) == 8_859_144                 # FC input 6·6·384 (floor pooling, TF port)
    pair = create_model("levi_hassner", tasks_of(["age", "gender"]), input_size=227, separate=True)
    assert n_params(pair) == 8_859_144 + 8_856_066    # two single-task nets: 70.86 MB fp32 (Table 4: 70.8)
    assert set(pair(torch.zeros(1, 3, 227, 227))) == {"age", "gender"}
    caffe = create_model("levi_hassner", tasks_of(["age"]), input_size=227, ceil_mode=True)
    assert caffe.shared[0].in_features == 7 * 7 * 384


def test_lmtcnn_table1_shapes_and_table4_sizes():
    tasks = tasks_of(["age", "gender"])
    model = create_model("lmtcnn", tasks, input_size=227)
    shapes = []
    x = torch.zeros(1, 3, 227, 227)
    model.eval()
    with torch.no_grad():
        for layer in model.trunk:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes[3] == (96, 27, 27)      # after conv → pool → LRN (the paper's "28×28×96")
    assert shapes[4] == (256, 27, 27)     # block 1 at full resolution
    assert shapes[5] == (384, 14, 14)     # block 2 downsamples: Table 1's 14×14
    assert shapes[6] == (384, 6, 6)
    # Table 4 sizes: LMTCNN-2-1 30.0 MB (strides [1,2]); LMTCNN-1-1 8.7 MB needs strides [2,2]
    assert n_params(create_model("lmtcnn", tasks, 227, width=[2, 1])) * 4 / 1e6 == pytest.approx(30.0, abs=0.5)
    assert n_params(create_model("lmtcnn", tasks, 227, strides=[2, 2])) * 4 / 1e6 == pytest.approx(8.7, abs=0.05)
    assert n_params(create_model("lmtcnn_2_1", tasks, 227)) == n_params(create_model("lmtcnn", tasks, 227, width=[2, 1]))


@pytest.mark.parametrize("width", [[0.25, 0.25], [0.5, 4], [4, 0.25], [1.5, 3], [3, 1], [4, 4]])
def test_lmtcnn_any_width_builds(width):
    tasks = tasks_of(["age", "gender"])
    model = create_model("lmtcnn", tasks, input_size=64, width=width)
    pw1 = model.trunk[4][3]
    pw2 = model.trunk[5][3]
    assert pw1.out_channels == max(1, round(256 * width[0]))
    assert pw2.out_channels == max(1, round(384 * width[1]))
    out = model.eval()(torch.zeros(1, 3, 64, 64))
    assert out["age"].shape == (1, 8)


# ---- seed 003 / 004 budgets ------------------------------------------------------------------------
def test_lightweight_joint_budget_and_ablation():
    joint = tasks_of(["age", "gender"], age={"head": "regression", "loss": "l2"}, gender={"loss": "mse"})
    model = create_model("lightweight_joint", joint, input_size=64)
    assert abs(n_params(model) - 6e6) / 6e6 < 0.15      # "only 6 × 10⁶ parameters"
    convs = {k: len([m for m in create_model("lightweight_joint", tasks_of(["age"]), 64, num_convs=k).modules()
                     if isinstance(m, nn.Conv2d)]) for k in (3, 4, 5, 6)}
    assert convs == {3: 3, 4: 4, 5: 5, 6: 6}


def test_multibranch_budget_aux_outputs_and_ensemble():
    tasks = tasks_of(["age", "gender"], age={"head": "regression", "loss": "l1"}, gender={"loss": "bce"})
    model = create_model("multibranch", tasks, input_size=64)
    assert abs(n_params(model) - 99_200) / 99_200 < 0.10
    out = model.eval()(torch.randn(3, 3, 64, 64))
    members = ("virtual", "final", "lowlevel")
    assert set(out) == {"age", "gender"} | {f"{t}:{m}" for t in ("age", "gender") for m in members}
    assert set(model.aux_loss_weights) == {f"{t}:{m}" for t in ("age", "gender") for m in members}
    assert model.aux_loss_weights["age:virtual"] < model.aux_loss_weights["age:lowlevel"] < model.aux_loss_weights["age:final"]
    # main output = the ensemble: mean for regression, logit of the mean probability for BCE
    age = torch.stack([out[f"age:{m}"] for m in members]).mean(0)
    torch.testing.assert_close(out["age"], age)
    p = torch.stack([torch.sigmoid(out[f"gender:{m}"]) for m in members]).mean(0)
    torch.testing.assert_close(torch.sigmoid(out["gender"]), p, atol=1e-5, rtol=1e-4)


def test_multibranch_softmax_ensemble_is_log_mean_probability():
    tasks = tasks_of(["age", "gender", "race"])
    model = create_model("multibranch", tasks, input_size=32).eval()
    out = model(torch.randn(2, 3, 32, 32))
    for name in ("age", "gender", "race"):
        probs = torch.stack([out[f"{name}:{m}"].softmax(-1) for m in ("virtual", "final", "lowlevel")]).mean(0)
        torch.testing.assert_close(out[name].exp(), probs, atol=1e-5, rtol=1e-4)


# ---- timm ------------------------------------------------------------------------------------------
def test_timm_unknown_backbone_is_user_error():
    with pytest.raises(UserError, match="unknown timm backbone 'not_a_net'.*timm.list_models"):
        create_model("timm", tasks_of(["age"]), input_size=64, backbone="not_a_net")


def test_timm_checkpoint_loads_from_local_file(tmp_path):
    import timm

    source = timm.create_model("mobilenetv3_small_100", pretrained=False)  # with its 1000-way classifier
    path = tmp_path / "mnv3.pth"
    torch.save(source.state_dict(), path)
    model = create_model("timm", tasks_of(["gender"]), input_size=64, backbone="mobilenetv3_small_100",
                         checkpoint=str(path))
    for name, tensor in model.trunk.state_dict().items():
        torch.testing.assert_close(tensor, source.state_dict()[name], msg=name)
    # a Lightning-style checkpoint of an agebench model: {"state_dict": {"model.trunk.<key>": ...}}
    wrapped = tmp_path / "agebench.ckpt"
    torch.save({"state_dict": {f"model.trunk.{k}": v for k, v in model.trunk.state_dict().items()}}, wrapped)
    again = create_model("timm", tasks_of(["gender"]), input_size=64, backbone="mobilenetv3_small_100",
                         checkpoint=str(wrapped))
    torch.testing.assert_close(again.trunk.conv_stem.weight, source.conv_stem.weight)


def test_timm_checkpoint_errors(tmp_path):
    import timm

    tasks = tasks_of(["age"])
    with pytest.raises(UserError, match="no such file"):
        create_model("timm", tasks, input_size=64, backbone="mobilenetv3_small_100", checkpoint=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable weights file"):
        create_model("timm", tasks, input_size=64, backbone="mobilenetv3_small_100", checkpoint=str(garbage))
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("mobilenetv3_large_100", pretrained=False).state_dict(), other)
    with pytest.raises(UserError, match="does not fit timm backbone 'mobilenetv3_small_100'.*another shape") as err:
        create_model("timm", tasks, input_size=64, backbone="mobilenetv3_small_100", checkpoint=str(other))
    assert "\n" not in str(err.value)


def test_timm_freeze_until_leaves_exactly_the_tail_trainable():
    model = create_model("timm", tasks_of(["age", "gender"]), input_size=64, backbone="mobilenetv3_small_100",
                         freeze_until="blocks.5")
    names = [n for n, _ in model.trunk.named_parameters()]
    start = names.index("blocks.5.0.conv.weight")
    trainable = {n for n, p in model.trunk.named_parameters() if p.requires_grad}
    assert trainable == set(names[start:])            # blocks.5.*, conv_head.*
    assert all(p.requires_grad for p in model.heads.parameters())
    with pytest.raises(UserError, match="freeze_until='blocks.99'"):
        create_model("timm", tasks_of(["age"]), input_size=64, backbone="mobilenetv3_small_100", freeze_until="blocks.99")


def test_timm_train_last_n_counts_layers_in_execution_order():
    model = create_model("timm", tasks_of(["age"]), input_size=64, backbone="mobilenetv3_small_100", train_last_n=3)
    trainable = {n for n, p in model.trunk.named_parameters() if p.requires_grad}
    # the last three weighted layers a forward pass runs: blocks.5.0.conv, blocks.5.0.bn1, conv_head
    assert trainable == {"blocks.5.0.conv.weight", "blocks.5.0.bn1.weight", "blocks.5.0.bn1.bias",
                         "conv_head.weight", "conv_head.bias"}
    # frozen batch norm keeps its running statistics while the model trains
    model.train()
    assert model.trunk.bn1.training is False and model.trunk.blocks[5][0].bn1.training is True
    stats = model.trunk.bn1.running_mean.clone()
    train_step(model, tasks_of(["age"]), 64)
    torch.testing.assert_close(model.trunk.bn1.running_mean, stats)
    # both rules: union
    both = create_model("timm", tasks_of(["age"]), input_size=64, backbone="mobilenetv3_small_100",
                        train_last_n=1, freeze_until="blocks.5")
    assert {n for n, p in both.trunk.named_parameters() if p.requires_grad} == trainable


@pytest.mark.slow
def test_timm_xception41_builds_small():
    model = create_model("timm", tasks_of(["age", "gender"]), input_size=64, backbone="xception41")
    assert model.eval()(torch.zeros(1, 3, 64, 64))["age"].shape == (1, 8)


@pytest.mark.slow
def test_timm_efficientnet_b0_trains_small():
    tasks = tasks_of(["age", "gender", "race"])
    train_step(create_model("timm", tasks, input_size=64, backbone="efficientnet_b0"), tasks, 64)


# ---- seed 000's oversampled evaluation -------------------------------------------------------------
def test_ten_crop_order_and_grouping():
    from agebench.data.augment import center_crop, ten_crop

    n, h, w, crop = 2, 8, 10, 5
    images = torch.arange(n * 3 * h * w, dtype=torch.float32).view(n, 3, h, w)
    out = ten_crop(images, crop)
    assert out.shape == (n * 10, 3, crop, crop)
    views = out.view(n, 10, 3, crop, crop)
    for i in range(n):
        img = images[i]
        expected = [img[:, :crop, :crop], img[:, :crop, w - crop:], img[:, h - crop:, :crop],
                    img[:, h - crop:, w - crop:]]
        centre = center_crop(img.permute(1, 2, 0)[None], crop)[0].permute(2, 0, 1)  # same offsets as center_crop
        expected.append(centre)
        expected += [e.flip(-1) for e in expected]
        for k in range(10):
            torch.testing.assert_close(views[i, k], expected[k])
    with pytest.raises(ValueError):
        ten_crop(images, 11)


def test_ten_crop_softmax_average_matches_loop():
    from agebench.data.augment import ten_crop

    tasks = tasks_of(["age"])
    model = create_model("lmtcnn", tasks, input_size=64).eval()
    images = torch.randn(2, 3, 72, 72)
    with torch.no_grad():
        batched = model(ten_crop(images, 64))["age"].softmax(-1).view(2, 10, -1).mean(1)
        single = torch.stack([model(ten_crop(images[i:i + 1], 64))["age"].softmax(-1).mean(0) for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    assert math.isclose(float(batched.sum()), 2.0, rel_tol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_slice_sum_lrn_matches_torch(channels_last):
    from agebench.models.layers import lrn

    torch.manual_seed(0)
    x = torch.randn(2, 96, 9, 9) * 3
    expected = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(lrn()(x), expected, atol=1e-5)
