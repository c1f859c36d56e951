"""The package's layers hold: every import between agebench's modules (function-level ones included, since
an import inside a function is still a dependency) follows the layer order that docs/architecture.md
states, no two modules import each other even indirectly, report code imports only its allow-list, and
no library module imports a command module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agebench"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
REPORT_ALLOWED = ("agebench.results", "agebench.errors", "agebench.paths", "agebench.files", "agebench.report")


def module_files() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = module_files()


def resolve(dotted: str) -> str | None:
    """The module a dotted import name lands in (`agebench.tasks.base.Task` → `agebench.tasks.base`)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def imports_of(name: str) -> list[tuple[int, str]]:
    """(line, module) of every agebench module `name` imports, at any depth of its code."""
    path = MODULES[name]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from its package
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from agebench.tasks import age_heads` imports the module age_heads, not only the package
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("agebench"):
                found = resolve(target)
                if found and found != name:
                    out.append((node.lineno, found))
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def layers() -> list[list[str]]:
    """The layer order of docs/architecture.md's ```layers block: top first, one line per layer."""
    block = re.search(r"```layers\n(.*?)```", ARCHITECTURE.read_text(), re.S)
    assert block, "docs/architecture.md has no ```layers block (the order this test enforces)"
    rows = []
    for line in block.group(1).splitlines():
        names = line.split("#")[0].split()
        if names:
            rows.append(names)
    return rows


def layer_of(module: str, order: list[list[str]]) -> int:
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else "__init__"
    for depth, row in enumerate(order):
        if unit in row:
            return depth
    raise AssertionError(f"{module}: its package {unit!r} is in no layer of docs/architecture.md; add it there")


def test_every_package_and_ground_module_has_a_layer():
    order = layers()
    for module in MODULES:
        layer_of(module, order)


def test_no_import_runs_against_the_layer_order():
    order = layers()
    bad = []
    for module, imports in GRAPH.items():
        mine = layer_of(module, order)
        for line, target in imports:
            theirs = layer_of(target, order)
            if theirs < mine:
                bad.append(f"{module}:{line} imports {target}, a higher layer")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = {m: {t for _, t in imports} for m, imports in GRAPH.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("agebench.report")))
def test_report_imports_only_its_allow_list(module):
    bad = [f"{module}:{line} imports {t}" for line, t in GRAPH[module]
           if not any(t == a or t.startswith(a + ".") for a in REPORT_ALLOWED)]
    assert not bad, "; ".join(bad) + " — report reads run records only (move what it needs into agebench.results)"


def test_no_library_module_imports_a_command_module():
    commands = {m for m in MODULES if m.endswith(".command") or m.startswith("agebench.cli")}
    bad = [f"{m}:{line} imports {t}" for m, imports in GRAPH.items() for line, t in imports
           if t in commands and m not in commands]
    assert not bad, "\n".join(bad)


def test_the_top_level_holds_only_the_package_face_and_ground_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "errors.py", "files.py", "paths.py"], top


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_subpackage_states_its_job_and_members(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
    members = sorted(p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__")
    members += sorted(p.parent.name for p in (PACKAGE / package).glob("*/__init__.py"))
    missing = [m for m in members if not re.search(rf"`{m}`|\b{m}\b", doc)]
    assert doc and not missing, f"agebench/{package}/__init__.py's docstring names neither its job nor {missing}"


def test_the_layer_check_sees_function_level_imports(tmp_path):
    """The walk counts an import inside a function: the very kind that kept the old circles alive."""
    lines = [line for line, t in GRAPH["agebench.training.fit"]]
    top = {n.lineno for n in ast.parse(MODULES["agebench.training.fit"].read_text()).body
           if isinstance(n, ast.Import | ast.ImportFrom)}
    assert any(line not in top for line in lines)
