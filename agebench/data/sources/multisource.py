"""Multi-source data (seed 002): several datasets with different label sets, trained together.

    agebench train data=multisource \\
        'data.sources=[{name: imdb_wiki, root: /data/imdb_crop}, {name: utkface, root: /data/UTKFace}]'

Each entry names a dataset (its default options come from data.source_defaults.<name>, which
conf/data/multisource.yaml composes from conf/data/<name>.yaml: the data layer never reads conf/ itself;
the entry overrides them, `root` included) and may set `tag` (default: its name) to tell two copies of
one dataset apart.
The records of all sources are concatenated with:

* `source` = the tag, `subject` = "<tag>:<subject>" (ids of different datasets never collide),
* `image` = the absolute image path (each source's own root), so one cache entry covers them all,
* labels a source does not carry left missing (-1 / NaN): agebench.tasks.base masks those rows out of that
  task's loss and metrics, never fills them. `data.allow_missing_labels: true` keeps a row that has a label
  for at least one of the run's tasks.

Sources that carry race must share race classes, and sources that carry age groups must share the
group scheme (their indices would mean different things otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, get_source, register_source
from agebench.data.sources._common import opt
from agebench.errors import UserError

USAGE = "data.sources=[{name: imdb_wiki, root: <dir>}, {name: utkface, root: <dir>}]"


def _default_options(data_cfg, name: str) -> dict:
    """The options of dataset `name` that the config layer composed into data.source_defaults.<name>
    (conf/data/multisource.yaml's defaults list); {} when the caller passed none (the entry then brings
    its own options and each source falls back to its built-in defaults)."""
    from omegaconf import DictConfig, OmegaConf

    defaults = opt(data_cfg, "source_defaults", None) or {}
    options = defaults.get(name) if hasattr(defaults, "get") else None
    if options is None:
        return {}
    options = OmegaConf.to_container(options, resolve=False) if isinstance(options, DictConfig) else dict(options)
    # sizes and loader settings belong to the multi-source config, not to its parts
    for key in ("image_size", "load_size", "batch_size", "num_workers", "defaults"):
        options.pop(key, None)
    return options


def source_configs(data_cfg) -> list[tuple[str, DatasetSource, object]]:
    """(tag, source, config) per entry of data.sources."""
    from omegaconf import DictConfig, OmegaConf

    entries = opt(data_cfg, "sources", [])
    if not entries:
        raise UserError(f"data=multisource needs its datasets: {USAGE}")
    out, tags = [], set()
    for entry in entries:
        entry = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else dict(entry)
        name = entry.get("name")
        if not name or name == "multisource":
            raise UserError(f"every data.sources entry needs the name of a dataset, e.g. {USAGE}")
        source = get_source(str(name))
        tag = str(entry.get("tag") or name)
        if tag in tags:
            raise UserError(f"data.sources lists {tag!r} twice; give the copies distinct tags ({{name: {name}, tag: {name}_b, root: ...}})")
        tags.add(tag)
        cfg = OmegaConf.create({**_default_options(data_cfg, str(name)), **entry})
        out.append((tag, source, cfg))
    return out


@register_source
class MultiSource(DatasetSource):
    name: str = "multisource"
    tasks: tuple[str, ...] = ("age", "gender", "race")
    needs_root: bool = False

    def check_root(self, data_cfg) -> Path:
        for _, source, cfg in source_configs(data_cfg):
            source.check_root(cfg)
        return Path(".")

    def parse(self, data_cfg) -> ParsedRecords:
        frames, skipped, notes = [], [], []
        race_names, race_from = (), None
        bins, bins_from, group_names = None, None, ()
        for tag, source, cfg in source_configs(data_cfg):
            parsed = source.parse(cfg)
            records = parsed.records.copy()
            if records.empty:
                notes.append(f"{tag}: no usable records")
            records["image"] = [str(p.expanduser().resolve()) for p in source.image_paths(records, cfg)]
            records["subject"] = tag + ":" + records["subject"].astype(str)
            records["source"] = tag
            if (records["race"] >= 0).any():
                if race_from is not None and tuple(parsed.race_names) != tuple(race_names):
                    raise UserError(f"data.sources {race_from} and {tag} use different race classes "
                                    f"({len(race_names)} vs {len(parsed.race_names)}); combine race labels from one scheme only")
                race_names, race_from = tuple(parsed.race_names), tag
            if (records["age_group"] >= 0).any():
                scheme = source.native_age_bins
                if bins is not None and scheme is not None and scheme.intervals != bins.intervals:
                    raise UserError(f"data.sources {bins_from} ({bins.name}) and {tag} ({scheme.name}) give different age "
                                    f"groups; combine age groups from one scheme only")
                bins, bins_from, group_names = scheme, tag, tuple(parsed.age_group_names)
            frames.append(records)
            if len(parsed.skipped):
                part = parsed.skipped.copy()
                part["reason"] = tag + ": " + part["reason"].astype(str)
                skipped.append(part)
            notes += [f"{tag}: {note}" for note in parsed.notes]
            carried = [t for t, column in (("age", None), ("gender", "gender"), ("race", "race"))
                       if (column is None and (records["age"].notna().any() or (records["age_group"] >= 0).any()))
                       or (column is not None and (records[column] >= 0).any())]
            notes.append(f"{tag}: {len(records)} records with labels {', '.join(carried) or 'none'}; "
                         f"the others are missing and masked out of their tasks")
        self.native_age_bins = bins
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["image", "subject"])
        skipped_table = (pd.concat(skipped, ignore_index=True) if skipped
                         else pd.DataFrame({"reason": pd.Series(dtype=str), "detail": pd.Series(dtype=str)}))
        return ParsedRecords(normalise(frame, self.name), skipped_table, notes,
                             race_names=race_names, age_group_names=group_names)

    def image_paths(self, records: pd.DataFrame, data_cfg) -> list[Path]:
        return [Path(p) for p in records["image"]]
