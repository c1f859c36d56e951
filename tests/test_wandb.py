"""W&B, offline: a fold's run config carries what a workspace groups by, and `agebench report wandb=true`
logs the report's tables (the paired single- vs multi-task comparison included) as wandb.Tables."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
from pathlib import Path

import pytest
from conftest import TINY, run_cli
from fakes_records import fake_study

pytest.importorskip("wandb")

OFFLINE = {"WANDB_MODE": "offline", "WANDB_DISABLE_GIT": "true"}


def _offline_runs(root: Path) -> list[Path]:
    return sorted(root.glob("**/wandb/offline-run-*"))


def test_make_logger_puts_tasks_variant_study_and_trial_in_the_run_config(tmp_path):
    from agebench.config.compose import compose_config
    from agebench.training.loggers import make_logger

    cfg = compose_config(["logger=wandb", "logger.mode=disabled", "tasks=age_gender"])
    cfg_dict = {"tasks": {"names": ["age", "gender"]}, "hydra": {"x": 1}}
    record = {"study": "gamma", "trial": 3, "trial_params": {"loss.gamma": 0.25}, "fold": 2, "dataset": "synthetic",
              "model": "lmtcnn", "tasks": ["age", "gender"], "variant": "multi"}
    logger = make_logger(cfg, cfg_dict, record, tmp_path / "fold_2")
    config = logger._wandb_init["config"]
    assert config["tasks"]["names"] == ["age", "gender"] and "hydra" not in config
    assert (config["variant"], config["study"], config["trial"], config["fold"]) == ("multi", "gamma", 3, 2)
    assert config["trial_params"] == {"loss.gamma": 0.25}
    assert "anonymous" not in logger._wandb_init  # wandb warns about any value of it


@pytest.mark.slow
def test_an_offline_fold_run_has_the_grouping_config_and_no_anonymous_warning(tmp_path):
    out = tmp_path / "run"
    env = {**OFFLINE, "WANDB_SILENT": "false"}  # wandb's warnings are what this test looks for
    proc = run_cli("train", *[o for o in TINY if not o.startswith("logger=")], "logger=wandb", "protocol.folds=[0]",
                   "tasks=age_gender", f"output_dir={out}", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "anonymous setting" not in proc.stdout + proc.stderr
    (run_dir,) = _offline_runs(out / "fold_0")  # nested in the fold dir: docs/wandb.md syncs these
    # offline, the config lives in the binary .wandb log until `wandb sync`; wandb.init logs it as a dict
    (line,) = [x for x in (run_dir / "logs" / "debug.log").read_text().splitlines() if x.startswith("config: {")]
    config = ast.literal_eval(line[len("config: "):])
    assert config["tasks"]["names"] == ["age", "gender"]
    assert (config["fold"], config["variant"], config["study"], config["trial"]) == (0, None, None, None)


@pytest.mark.slow
def test_report_logs_its_tables_to_an_offline_wandb_run(tmp_path):
    runs = fake_study(tmp_path / "runs")
    csv_proc = run_cli("report", f"runs={runs}", "format=csv", f"out={tmp_path / 'report.csv'}", "plots=false", cwd=tmp_path)
    assert csv_proc.returncode == 0, csv_proc.stderr
    proc = run_cli("report", f"runs={runs}", "wandb=true", f"wandb_dir={tmp_path / 'wb'}", "plots=false",
                   env=OFFLINE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tables logged to W&B" in proc.stderr
    (run_dir,) = _offline_runs(tmp_path / "wb")
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in run_dir.glob("files/media/table/report/*.table.json")}
    assert {"runs", "paired"} <= set(tables), sorted(tables)
    # the paired comparison, exactly as format=csv writes it (numbers at full precision)
    header, *rows = list(csv.reader(io.StringIO((tmp_path / "report_paired.csv").read_text())))
    assert tables["paired"]["columns"] == header
    expected = [[float(v) if _is_number(v) else (v or None) for v in row] for row in rows]
    assert tables["paired"]["data"] == expected
    assert len(expected) >= 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_push_tables_logs_numbers_to_a_local_offline_run(tmp_path, monkeypatch):
    """The push honours WANDB_MODE (offline here): nothing is sent, the run dir is local."""
    from omegaconf import OmegaConf

    from agebench.report.tables import Cell, Document, Table
    from agebench.report.wandb_push import push_tables, table_rows

    monkeypatch.setenv("WANDB_MODE", "offline")
    table = Table(title="t", columns=["config", "age/top1"], name="paired")
    table.add([Cell("age vs age+gender"), Cell("41.0 ± 2.2", mean=41.0, std=2.2)])
    assert table_rows(table) == (["source_kind", "config", "age/top1 mean", "age/top1 std"],
                                 [["ours", "age vs age+gender", 41.0, 2.2]])
    run_dir = push_tables(Document(title="t", tables=[table]), OmegaConf.create({"wandb_dir": str(tmp_path)}), "s")
    assert Path(run_dir).is_relative_to(tmp_path) and "offline-run" in str(run_dir)
    assert list(Path(run_dir).glob("media/table/report/paired_*.table.json"))
    assert os.environ["WANDB_MODE"] == "offline"


def test_wandb_source_skips_the_report_runs_it_pushed():
    """`source=wandb` reads every run of the project: the report's own runs must not become records."""
    from fakes_records import make_record

    from agebench.report.wandb_source import fetch_records

    class Run:
        def __init__(self, config, summary, job_type, run_id):
            self.config, self.summary, self.job_type, self.id = config, summary, job_type, run_id
            self.state, self.group, self.path = "finished", "fake", ["ent", "proj", run_id]

    class Api:
        def runs(self, path, filters=None, **kwargs):
            fold = Run(make_record(0, tasks=["age"])["config"], {"test/age/top1": 0.4}, "fold_0", "f0")
            report = Run({"runs": "outputs", "table": None, "source": "local", "summary": "1 run record"}, {},
                         "report", "rep")
            return [fold, report]

    records = fetch_records("ent/proj", api=Api())
    assert [r["metrics"]["age/top1"] for r in records] == [0.4]
