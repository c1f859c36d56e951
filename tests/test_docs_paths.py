"""docs/architecture.md and docs/extending.md name modules and files; every one of them exists, so
the docs cannot rot silently when a module moves (issue 11)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["docs/architecture.md", "docs/extending.md"]
TOP = ("agebench", "conf", "tests", "reports", "docs", "benchmarks", "sweeps")

# a repository path: agebench/training/fit.py, conf/data/_base.yaml, agebench/sweeps/ (placeholders like <name> skipped)
PATH = re.compile(r"(?<![\w/.<>-])((?:" + "|".join(TOP) + r")/[\w./*<>-]*)")
# a dotted module (or module.attribute): agebench.data.records.normalise
DOTTED = re.compile(r"(?<![\w./])(agebench(?:\.\w+)+)")
# the diagram's short names, relative to agebench/: data/sources/*, builders.py, report/*
SHORT = re.compile(r"(?<![\w./])((?:\w+/)*\w+\.py|(?:\w+/)+\*)")


def _text(doc: str) -> str:
    return (ROOT / doc).read_text()


def _exists(rel: str) -> bool:
    rel = rel.rstrip(".,;:)")
    if "<" in rel:  # a file the reader creates: its folder must exist
        rel = rel[: rel.index("<")].rsplit("/", 1)[0]
    if "*" in rel:  # a glob: it matches something
        return any(ROOT.glob(rel))
    return (ROOT / rel).exists()


def _module_exists(dotted: str) -> bool:
    """Some prefix of `dotted` (at least agebench.<x>) is a module; the rest names something in it."""
    parts = dotted.split(".")
    for n in range(2, len(parts) + 1):
        try:
            found = importlib.util.find_spec(".".join(parts[:n])) is not None
        except ModuleNotFoundError:  # a module's attribute, not a submodule
            found = False
        if not found:
            return n > 2 and hasattr(importlib.import_module(".".join(parts[:n - 1])), parts[n - 1])
    return True


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc):
    text = _text(doc)
    paths = sorted(set(PATH.findall(text)))
    assert len(paths) > 10, paths  # the pattern still finds them
    missing = [p for p in paths if not _exists(p)]
    assert not missing, f"{doc} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_dotted_module_a_doc_names_imports(doc):
    missing = [m for m in sorted(set(DOTTED.findall(_text(doc)))) if not _module_exists(m)]
    assert not missing, f"{doc} names modules that do not exist: {missing}"


def test_the_data_flow_diagram_names_real_modules():
    text = _text("docs/architecture.md")
    diagram = re.search(r"```\n(.*?)```", text, flags=re.S).group(1)
    names = sorted({n for n in SHORT.findall(diagram) if not n.startswith(tuple(f"{top}/" for top in TOP))})
    assert len(names) > 15, names
    missing = [n for n in names if not _exists(f"agebench/{n}")]
    assert not missing, f"the diagram names modules that do not exist under agebench/: {missing}"


def test_every_step_of_the_data_flow_has_an_owner():
    text = _text("docs/architecture.md")
    for step in ("config", "records", "labels", "protocol", "cache", "datamodule", "model", "loss / metrics",
                 "run record", "results store", "report"):
        assert re.search(rf"^\| {re.escape(step)} \| .+ \| .*`agebench/", text, flags=re.M), step


# `agebench/training/builders.py` (`resolve_sizes`, `build_model`): the names listed right after a module exist in it
NAMED = re.compile(r"`(agebench/[\w/]+)\.py`\s*\(((?:`\w+`(?:, )?)+)\)")


@pytest.mark.parametrize("doc", DOCS)
def test_functions_a_doc_names_beside_a_module_exist_in_it(doc):
    found = NAMED.findall(_text(doc))
    assert found  # the pattern still finds them
    missing = []
    for path, names in found:
        module = importlib.import_module(path.replace("/", "."))
        missing += [f"{path}.py: {n}" for n in re.findall(r"`(\w+)`", names) if not hasattr(module, n)]
    assert not missing, f"{doc} names functions that do not exist: {missing}"
