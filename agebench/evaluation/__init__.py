"""A trained run again, after training: evaluated on its own test fold or another dataset, exported, profiled.

Members: `trained_runs` (which checkpoints a run dir holds, its config, weights
with `weights_only=True`), `target_data` (the evaluation dataset: the run's tasks restated for it, its age
mapping), `evaluate` (the folds of a run on a dataset → `evals.jsonl` and predictions), `export` (ONNX /
TorchScript with the preprocessing in the metadata, checked against PyTorch), `profile_models` (the cost
table of one model or a profile set) and `command` (`agebench eval`, `agebench export`, `agebench profile`).
"""
