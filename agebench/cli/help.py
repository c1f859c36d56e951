"""`agebench <command> --help`: the command's own config groups (with their choices), its keys and the
keys of the selected group options, each with the one-line description its yaml comment gives.

Read from the yaml text itself (values as written, `# comments` as descriptions), so the help is exactly
what the config files say and works for any command in agebench.cli.commands.COMMANDS: its root config's defaults list
names its groups; a root config it inherits (sweep and profile start from `train`) contributes its
groups, and its keys are one `--help` away. `agebench <command> group=option --help` shows that option's keys.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from agebench.cli.commands import COMMANDS
from agebench.paths import conf_dir, sweeps_dir

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*|'[^']*'|\"[^\"]*\"):(?:\s+(?P<rest>.*))?$")
SKIP_TOP = {"defaults", "hydra"}


@dataclass
class Key:
    path: str
    value: str
    doc: str


@dataclass
class DefaultEntry:
    group: str | None  # None: a root config (e.g. `train`) or _self_
    option: str | None
    optional: bool = False


def _split_comment(text: str) -> tuple[str, str]:
    """`value   # comment` -> (value, comment), ignoring '#' inside quotes or brackets."""
    quote, depth = None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "#" and (i == 0 or text[i - 1] in " \t") and depth <= 0:
            return text[:i].rstrip(), text[i + 1:].strip()
    return text.rstrip(), ""


def header_comment(path: Path) -> list[str]:
    """The comment block that opens a yaml file, `@package` lines left out."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if stripped or lines:
                break
            continue
        text = stripped[1:].rstrip()
        text = text[1:] if text.startswith(" ") else text
        if not text.strip().startswith("@package"):
            lines.append(text)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!vs)(?<!\bal)[.?!](?=\s|$)")


def purpose(path: Path) -> str:
    """A file's one-line purpose: the first sentence of its opening comment paragraph."""
    paragraph = []
    for line in header_comment(path):
        if not line.strip() or line.startswith("  "):  # a blank line or an indented example ends it
            break
        paragraph.append(line.strip())
    text = " ".join(paragraph)
    end = SENTENCE_END.search(text)
    return text[: end.end()] if end else text


def parse_keys(path: Path) -> list[Key]:
    """Leaf keys of a yaml file as dotted paths with their value text and comment (trailing, else the
    first line of the comment block just above). `defaults` and `hydra` are left out."""
    keys: list[Key] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open parents
    above: list[tuple[int, str]] = []
    depth = 0  # open brackets of a flow value spread over several lines
    skip_indent = None
    header = True  # the comment block that opens the file describes the file, not its first key
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if header and (not stripped or stripped.startswith("#")):
            continue
        header = False
        if depth > 0:
            value, _ = _split_comment(stripped)
            depth += value.count("[") + value.count("{") - value.count("]") - value.count("}")
            continue
        if not stripped:
            above = []
            continue
        if stripped.startswith("#"):  # (column, text): a key's own comment block starts at its indent
            above.append((len(raw) - len(raw.lstrip()), stripped.lstrip("#").strip()))
            continue
        indent = len(raw) - len(raw.lstrip())
        if skip_indent is not None and indent > skip_indent:
            continue
        if stripped.startswith("- ") or stripped == "-":  # a block list: its key is one leaf, items not shown
            if stack and stack[-1][0] < indent:
                list_indent, list_key = stack.pop()
                dotted = ".".join([k for _, k in stack] + [list_key])
                doc = next((k.doc for k in keys if k.path == dotted and k.value == ""), "")
                keys[:] = [k for k in keys if k.path != dotted]
                keys.append(Key(dotted, "[…]", doc))
                skip_indent = list_indent
            above = []
            continue
        match = KEY_LINE.match(raw.rstrip())
        if not match:
            above = []
            continue
        key = match["key"].strip("'\"")
        skip_indent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack and key in SKIP_TOP:
            skip_indent = indent
            above = []
            continue
        value, doc = _split_comment(match["rest"] or "")
        doc = doc or (above[0][1] if above and above[0][0] == indent else "")
        above = []
        dotted = ".".join([k for _, k in stack] + [key])
        if value in ("", "|", ">"):
            stack.append((indent, key))
            if doc:
                keys.append(Key(dotted, "", doc))
            continue
        depth = value.count("[") + value.count("{") - value.count("]") - value.count("}")
        keys.append(Key(dotted, value, doc))
    return keys


def parse_defaults(path: Path) -> list[DefaultEntry]:
    """The defaults list of a yaml file (overrides of hydra/* groups left out)."""
    entries, inside = [], False
    for raw in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^defaults:\s*(#.*)?$", raw):
            inside = True
            continue
        if inside:
            item = re.match(r"^\s+-\s+(.*)$", raw)
            if not item:
                if raw.strip() and not raw.strip().startswith("#"):
                    break
                continue
            text, _ = _split_comment(item[1])
            if text.startswith("override ") or text.startswith("hydra/") or text == "_self_":
                continue
            if ":" in text:
                group, option = (s.strip() for s in text.split(":", 1))
                optional = option in ("null", "~")
                entries.append(DefaultEntry(group.lstrip("/"), None if optional else option, optional))
            else:
                entries.append(DefaultEntry(None, text))
    return entries


# ---------------------------------------------------------------------------------------------------
# groups

def group_dir(group: str) -> Path:
    return sweeps_dir() if group == "sweep" else conf_dir() / group


def group_options(group: str) -> list[str]:
    folder = group_dir(group)
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_")) if folder.is_dir() else []


def option_keys(group: str, option: str, seen: set | None = None) -> list[Key]:
    """Keys of conf/<group>/<option>.yaml, after those of the options it builds on (its defaults list)."""
    path = group_dir(group) / f"{option}.yaml"
    seen = set() if seen is None else seen
    if not path.exists() or path in seen:
        return []
    seen.add(path)
    merged: dict[str, Key] = {}
    for entry in parse_defaults(path):
        if entry.group is None and entry.option:  # a sibling option (`- cpu`, `- timm`, `- _options`)
            for key in option_keys(group, entry.option, seen):
                merged[key.path] = key
    for key in parse_keys(path):
        doc = key.doc or (merged[key.path].doc if key.path in merged else "")
        merged[key.path] = Key(key.path, key.value, doc)
    return list(merged.values())


def _groups_of(config_name: str, seen=None) -> tuple[list[DefaultEntry], list[str]]:
    """(group entries, root configs inherited) of conf/<config_name>.yaml, inherited ones first."""
    seen = set() if seen is None else seen
    seen.add(config_name)
    groups, inherited = [], []
    for entry in parse_defaults(conf_dir() / f"{config_name}.yaml"):
        if entry.group is None:
            if entry.option and entry.option not in seen and (conf_dir() / f"{entry.option}.yaml").exists():
                inherited.append(entry.option)
                more, deeper = _groups_of(entry.option, seen)
                groups += more
                inherited += deeper
        else:
            groups = [g for g in groups if g.group != entry.group] + [entry]
    return groups, inherited


def _chosen(overrides: list[str]) -> dict[str, str]:
    out = {}
    for o in overrides:
        key, sep, value = o.lstrip("+").partition("=")
        if sep and "." not in key and "/" not in key:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------
# the text

def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _key_lines(keys: list[Key], prefix: str, width: int) -> list[str]:
    if not keys:
        return ["  (no keys)"]
    names = [f"{prefix}{k.path}" for k in keys]
    values = [_fit(k.value, 28) for k in keys]
    w_name = min(34, max(len(n) for n in names))
    w_value = min(28, max(len(v) for v in values))
    lines = []
    for name, value, key in zip(names, values, keys, strict=True):
        head = f"  {name.ljust(w_name)}  {value.ljust(w_value)}"
        lines.append(_fit(f"{head}  {key.doc}".rstrip(), width))
    return lines


def command_help(name: str, overrides: list[str] | None = None) -> str:
    """The help text of `agebench <name>` (a key of agebench.cli.commands.COMMANDS)."""
    command = COMMANDS[name]
    width = max(80, min(140, shutil.get_terminal_size((120, 24)).columns))
    chosen = _chosen(list(overrides or []))
    groups, inherited = _groups_of(command.config_name)
    usage = f"usage: agebench {name} [group=option ...] [key=value ...]" if groups else f"usage: agebench {name} [key=value ...]"
    if any(e.group == "trainer" for e in groups):
        usage += "   (-m a=1,2 b=x,y: a grid of runs)"
    lines = [f"agebench {name}: {command.summary}", usage]
    root = conf_dir() / f"{command.config_name}.yaml"
    about = header_comment(root)
    if about:
        lines += [""] + [f"  {line}".rstrip() for line in about[:24]]
    if groups:
        lines += ["", "config groups (group=option; * = default):"]
        for entry in groups:
            if entry.group == "sweep":  # listed as studies below
                continue
            choice = chosen.get(entry.group, entry.option)
            options = group_options(entry.group)
            lines.append(f"  {entry.group}" + ("   (optional)" if entry.optional else ""))
            w = max((len(o) for o in options), default=0) + 1
            for option in options:
                mark = "*" if option == choice else " "
                doc = purpose(group_dir(entry.group) / f"{option}.yaml")
                lines.append(_fit(f"    {mark}{option.ljust(w)} {doc}".rstrip(), width))
    lines += ["", f"keys of `agebench {name}` (key=value; value as in {root.relative_to(conf_dir().parent)}):"]
    lines += _key_lines(parse_keys(root), "", width)
    for entry in groups:
        choice = chosen.get(entry.group, entry.option)
        if not choice or choice in ("null", "~") or entry.group in ("experiment", "sweep", "profile_set"):
            continue
        keys = option_keys(entry.group, choice)
        if keys:
            lines += ["", f"keys of {entry.group}={choice} ({entry.group}.<key>=value; another option: {entry.group}=<option> --help):"]
            lines += _key_lines(keys, f"{entry.group}.", width)
    if inherited:
        names = ", ".join(f"`agebench {n}`" if n in COMMANDS else n for n in inherited)
        lines += ["", f"also accepts every key of {names} ({' '.join(f'agebench {n} --help' for n in inherited if n in COMMANDS)})."]
    if any(e.group == "sweep" for e in groups):
        lines += ["", "studies (sweep=<name>, in sweeps/):"]
        studies = group_options("sweep")
        w = max((len(s) for s in studies), default=0)
        lines += [_fit(f"  {s.ljust(w)}  {purpose(sweeps_dir() / f'{s}.yaml')}", width) for s in studies]
    lines += ["", f"the composed config: agebench {name} [overrides] --cfg job    Hydra's own options: --hydra-help"]
    return "\n".join(lines)
