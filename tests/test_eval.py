"""`agebench eval`: a run's checkpoint evaluated again reproduces its record; cross-dataset evaluation
on a fake UTKFace copy lands in the report's trained-on × tested-on table; age-bin mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, run_cli
from fakes.utkface import EXPECTED as UTK_EXPECTED
from fakes.utkface import make_utkface

from agebench.config.compose import compose_config
from agebench.errors import UserError
from agebench.evaluation.evaluate import EVALS_FILE, evaluate
from agebench.evaluation.target_data import AgeMapping
from agebench.results.store import RESULTS_FILE, read_records


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny 3-fold age+gender run on synthetic faces (trained once for this module)."""
    from agebench.training.experiment import run_experiment

    out = tmp_path_factory.mktemp("eval") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(compose_config([*TINY, f"output_dir={out}"]), str(out))
    finally:
        torch.set_num_threads(before)
    return out


def test_eval_of_best_checkpoint_reproduces_the_run_records_test_metrics_exactly(trained_run):
    trained = {r["fold"]: r for r in read_records(trained_run / RESULTS_FILE)}
    evals = evaluate(str(trained_run), echo=lambda *_: None)
    assert sorted(e["fold"] for e in evals) == sorted(trained) == [0, 1, 2]
    for e in evals:
        run = trained[e["fold"]]
        assert e["kind"] == "eval" and e["trained_on"] == e["tested_on"] == "synthetic" and e["split"] == "test"
        assert e["metrics"] == run["metrics"]  # exact: same weights, rows, batches and metric code
        # the predictions CSV holds the same predictions the run saved for that fold
        csv = pd.read_csv(trained_run / e["predictions"])
        saved = np.load(trained_run / run["predictions"])
        assert len(csv) == e["fold_sizes"]["test"] == len(saved["age_pred"])
        np.testing.assert_array_equal(csv["age_pred"].to_numpy(), saved["age_pred"])
        np.testing.assert_array_equal(csv["gender_true"].to_numpy(), saved["gender_true"][:, 0])
        probs = csv[[c for c in csv.columns if c.startswith("age_p") and c[5:].isdigit()]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert csv["id"].is_unique
    # a second eval of one checkpoint replaces its eval record instead of adding one
    evaluate(str(trained_run / "fold_1" / "checkpoints" / "best.ckpt"), echo=lambda *_: None)
    assert sorted(r["fold"] for r in read_records(trained_run / EVALS_FILE)) == [0, 1, 2]


def test_model_trained_on_synthetic_evaluates_on_fake_utkface_and_report_shows_the_cell(trained_run, tmp_path):
    root = make_utkface(tmp_path / "UTKFace")
    cfg = compose_config([f"ckpt={trained_run}", "data=utkface", f"data.root={root}"], config_name="eval")
    evals = evaluate(str(trained_run), cfg.data, folds=[0, 2], echo=lambda *_: None)
    assert [e["fold"] for e in evals] == [0, 2]
    for e in evals:
        assert (e["trained_on"], e["tested_on"], e["split"]) == ("synthetic", "utkface", "all")
        assert e["fold_sizes"]["test"] == UTK_EXPECTED["records"]   # every parsed UTKFace image, none skipped
        assert {"age/top1", "age/mae", "gender/acc"} <= set(e["metrics"])
        assert len(pd.read_csv(trained_run / e["predictions"])) == UTK_EXPECTED["records"]
    result = run_cli("report", f"runs={trained_run}", "compare=false")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### Cross-dataset age/top1"))
    header = next(line for line in lines[start:] if line.startswith("| trained on"))
    row = next(line for line in lines[lines.index(header):] if line.startswith("| synthetic"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    top1 = np.array([e["metrics"]["age/top1"] for e in evals]) * 100
    assert cells["utkface"] == f"{top1.mean():.2f} ± {top1.std(ddof=1):.2f}"
    own = np.array([r["metrics"]["age/top1"] for r in read_records(trained_run / RESULTS_FILE)]) * 100
    assert cells["synthetic"] == f"{own.mean():.2f} ± {own.std(ddof=1):.2f}"


def test_age_bins_map_onto_a_targets_groups_or_fail_in_one_line():
    from agebench.data.binning import parse_bins

    fine, adience = parse_bins("uniform:20"), parse_bins("adience8")
    mapping = AgeMapping.between(fine, adience, "adience")
    logits = torch.randn(5, fine.num_bins)
    mapped = mapping(logits).exp()
    probs = logits.softmax(-1)
    np.testing.assert_allclose(mapped.sum(-1).numpy(), 1.0, atol=1e-6)
    # group 0-2 gets exactly the model bin [0, 4) (centre 2); 60-100 the bins with centres 58..78 (58 is nearer
    # 60 than 53: ages between groups go to the nearest one)
    np.testing.assert_allclose(mapped[:, 0].numpy(), probs[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(mapped[:, 7].numpy(), probs[:, 14:].sum(-1).numpy(), rtol=1e-5)
    with pytest.raises(UserError, match=r"cannot be mapped .* no model bin falls in group\(s\) 30-39"):
        AgeMapping.between(adience, parse_bins("fairface9"), "fairface")


def test_eval_user_errors_are_one_line(tmp_path, trained_run):
    missing = run_cli("eval", f"ckpt={tmp_path / 'nope'}")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    with pytest.raises(UserError, match="eval.split='bogus'"):
        from agebench.evaluation.evaluate import EvalOptions

        evaluate(str(trained_run), options=EvalOptions(split="bogus"))
    from fakes.fgnet import make_fgnet  # age labels only: an age+gender model cannot be scored there

    cfg = compose_config([f"ckpt={trained_run}", "data=fgnet", f"data.root={make_fgnet(tmp_path / 'fgnet')}"],
                         config_name="eval")
    with pytest.raises(UserError, match="data=fgnet has no gender labels, but the model predicts age\\+gender"):
        evaluate(str(trained_run), cfg.data, echo=lambda *_: None)


def test_an_unwritable_eval_out_is_one_line(tmp_path, trained_run):
    """Issue 26 (8): a read-only eval.out was an OSError traceback. A regular file where the directory must
    be fails for root too (ENOTDIR), so the test does not depend on who runs it."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_cli("eval", f"ckpt={trained_run}", "eval.folds=[0]", f"eval.out={blocker / 'evals'}")
    assert result.returncode == 2, result.stderr[-1500:]
    assert result.stderr.count("\n") == 1 and "cannot write " in result.stderr and "a_file" in result.stderr


def test_eval_of_a_run_whose_first_fold_is_training_says_so(tmp_path):
    """Issue 26 (9): it said the run dir was "neither a checkpoint file nor a run dir"."""
    from agebench.evaluation.trained_runs import locate_checkpoints

    run = tmp_path / "run"
    (run / "fold_0" / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("experiment_name: x\n")  # what train writes before its first fold
    for ckpt in (run, run / "fold_0"):
        with pytest.raises(UserError, match=r"is an agebench run with no finished fold yet .*still training"):
            locate_checkpoints(str(ckpt))


def test_a_planted_interpolation_in_a_run_config_is_refused_not_resolved(tmp_path, trained_run):
    """Issue 26 (1): config.yaml is written resolved; `${oc.env:…}` in it was planted by whoever could write the
    run dir. Eval and export refuse it in one line instead of reading the evaluator's environment."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("data:\n", "data:\n  note: ${oc.env:SECRET_TOKEN}\n", 1))
    env = {"SECRET_TOKEN": "hunter2-secret"}
    for command in (("eval", f"ckpt={run}", "eval.folds=[0]"), ("export", f"ckpt={run}")):
        result = run_cli(*command, env=env)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.count("\n") == 1 and "holds an interpolation at data.note" in result.stderr
        assert "hunter2" not in result.stdout + result.stderr
    assert not (run / EVALS_FILE).exists() or "hunter2" not in (run / EVALS_FILE).read_text()
    (run / "config.yaml").write_text("model: [unclosed\n")  # not YAML: one line too
    broken = run_cli("eval", f"ckpt={run}", "eval.folds=[0]")
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1 and "is not a readable run config" in broken.stderr


def test_race_is_scored_by_class_name_across_datasets():
    """Issue 26 (3): a UTKFace-trained model (White, Black, …) on MORPH-II files (Black, White, …) scored 0 % on
    all-White faces; labels are now mapped by class name, unknown classes left unscored and named."""
    from agebench.data.sources.morph2 import RACE_NAMES as MORPH
    from agebench.data.sources.utkface import RACE_NAMES as UTK
    from agebench.evaluation.target_data import race_by_name

    white_in_morph = np.full(4, float(MORPH.index("White")), dtype=np.float32)
    mapped, note = race_by_name(list(UTK), MORPH, white_in_morph, "utkface", "morph2")
    assert mapped.tolist() == [UTK.index("White")] * 4 and "mapped by class name" in note
    hispanic = np.array([MORPH.index("Hispanic"), -1], dtype=np.float32)
    mapped, note = race_by_name(list(UTK), MORPH, hispanic, "utkface", "morph2")
    assert mapped.tolist() == [-1, -1] and "Hispanic" in note and "(1) are not scored" in note
    same, none = race_by_name(list(UTK), UTK, white_in_morph, "utkface", "utkface")
    assert same is white_in_morph and none is None
    with pytest.raises(UserError, match="do not name its race classes"):
        race_by_name(None, MORPH, white_in_morph, "utkface", "morph2")
    with pytest.raises(UserError, match="share no name"):
        race_by_name(["a", "b"], MORPH, white_in_morph, "x", "morph2")


def test_a_trained_record_names_its_classes_and_the_export_carries_them(trained_run, tmp_path):
    from agebench.evaluation.export import preprocessing
    from agebench.tasks.factory import build_tasks

    (record, *_) = read_records(trained_run / RESULTS_FILE)
    assert record["class_names"]["gender"] == ["male", "female"]
    cfg = compose_config([*TINY, "tasks=age_gender_race"])
    tasks = build_tasks(cfg.tasks, race_classes=5)
    names = {"race": ["White", "Black", "Asian", "Indian", "Others"]}
    assert preprocessing(cfg, tasks, names)["outputs"]["race"]["labels"] == names["race"]


def test_bad_checkpoints_are_one_line_for_eval_and_export(tmp_path, trained_run):
    """Issue 26 (8): an empty best.ckpt (an IndexError inside the error handler), a checkpoint holding a bare
    tensor, one with other layer shapes and any unreadable one under export (torch's whole traceback) all end
    in one line, exit 2, naming the file."""
    import shutil

    for name, write in (("empty", lambda p: p.write_bytes(b"")),
                        ("tensor", lambda p: torch.save(torch.zeros(3), p)),
                        ("shapes", lambda p: torch.save({"state_dict": {k: torch.zeros(1) for k in
                                                          torch.load(p, weights_only=True)["state_dict"]}}, p))):
        run = tmp_path / name
        shutil.copytree(trained_run, run)
        ckpt = run / "fold_0" / "checkpoints" / "best.ckpt"
        write(ckpt)
        for command in (("eval", f"ckpt={ckpt}"), ("export", f"ckpt={ckpt}")):
            result = run_cli(*command)
            assert result.returncode == 2, (name, command, result.stderr[-1500:])
            assert result.stderr.count("\n") == 1 and str(ckpt) in result.stderr, (name, result.stderr)
            assert "weights_only=False" not in result.stderr
