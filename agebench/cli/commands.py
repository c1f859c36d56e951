"""The command table: each `agebench <command>`, the Hydra task function behind it (always
`<package>.command:<name>_command`) and its root config in conf/. Read by the entry point
(agebench.cli.main) and the help (agebench.cli.help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    target: str       # "module:function" taking the composed DictConfig
    config_name: str  # root config in conf/
    summary: str


COMMANDS: dict[str, Command] = {
    "train": Command("agebench.training.command:train_command", "train", "train one experiment over its protocol's folds"),
    "profile": Command("agebench.evaluation.command:profile_command", "profile", "params, GMACs, size and latency of a model"),
    "eval": Command("agebench.evaluation.command:eval_command", "eval", "evaluate a trained checkpoint on its test fold or another dataset"),
    "export": Command("agebench.evaluation.command:export_command", "export", "a trained checkpoint as ONNX or TorchScript, checked against PyTorch"),
    "data summary": Command("agebench.data.command:summary_command", "data_summary",
                            "parse a dataset's metadata: counts, histograms, skipped rows"),
    "sweep": Command("agebench.sweeps.command:sweep_command", "sweep", "run / inspect an Optuna study or grid from sweeps/"),
    "report": Command("agebench.report.command:report_command", "report", "paper-style tables and plots from run records"),
    "regress": Command("agebench.report.command:regress_command", "regress", "accuracy gate: compare runs with a baseline"),
}
