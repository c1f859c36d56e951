"""From a `data` config to records + decoded images, ready for a protocol and a datamodule."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np  # noqa: F401  (LoadedDataset.images)
import pandas as pd

from agebench.data.binning import AgeBins
from agebench.data.cache import cached_array
from agebench.data.sources import get_source
from agebench.errors import UserError

log = logging.getLogger(__name__)

_LOADED: dict[str, LoadedDataset] = {}  # per-process reuse across folds and sweep trials


@dataclass
class LoadedDataset:
    name: str
    records: pd.DataFrame
    images: np.ndarray                # (N, H, W, 3) uint8, usually a read-only memmap
    skipped: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    native_age_bins: AgeBins | None = None
    race_names: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """A hash of the record table (which images, with which labels and subjects, in which order): what the
        folds are made from. Resume compares it, so a parser change (a repaired name, a new file) never mixes
        folds of two different record tables in one output_dir."""
        import hashlib

        columns = [c for c in ("image", "subject", "age", "gender", "race", "age_group") if c in self.records.columns]
        text = self.records[columns].to_csv(index=False, float_format="%.6g")
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_size(data_cfg) -> int:
    """Size images are cached at: data.load_size, else 256/227 of the network input (seed 000's crops)."""
    if data_cfg.get("load_size"):
        return int(data_cfg["load_size"])
    return int(round(int(data_cfg["image_size"]) * 256 / 227))


def split_list_reader(name: str):
    """The `read_split_lists` of dataset `name`'s source module (official split files), or None when
    the format has none; training and evaluation make their folds with it."""
    try:
        module = importlib.import_module(f"agebench.data.sources.{name}")
    except ImportError:
        return None
    return getattr(module, "read_split_lists", None)


def _cfg_key(data_cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(data_cfg, resolve=True)


def load_dataset(data_cfg, cache_dir: str | Path) -> LoadedDataset:
    key = _cfg_key(data_cfg)
    if key in _LOADED:
        return _LOADED[key]
    source = get_source(str(data_cfg.name))
    size = load_size(data_cfg)
    if size < int(data_cfg.image_size):
        raise UserError(f"data.load_size={size} is smaller than data.image_size={data_cfg.image_size}; make it >= image_size")
    if source.name == "synthetic":
        dataset = _load_synthetic(source, data_cfg, cache_dir)
    else:
        dataset = _load_from_disk(source, data_cfg, cache_dir, size)
    _LOADED[key] = dataset
    return dataset


def _load_synthetic(source, data_cfg, cache_dir) -> LoadedDataset:
    from agebench.data.sources.synthetic import synthetic_spec

    parsed = source.parse(data_cfg)
    spec = synthetic_spec(data_cfg)
    from agebench.data.render import RENDERER_VERSION

    # the renderer's version joins the key: a redesigned renderer never serves faces cached by an older one
    images, _ = cached_array(cache_dir, {"dataset": "synthetic", "spec": repr(spec), "renderer": RENDERER_VERSION},
                             lambda: source.render(data_cfg)[0], prefix="synthetic")
    return LoadedDataset("synthetic", parsed.records, images, parsed.skipped, parsed.notes,
                         source.native_age_bins, parsed.race_names)


def _load_from_disk(source, data_cfg, cache_dir, size: int) -> LoadedDataset:
    from agebench.data.decode import decode_images  # the decode-once path for image files

    source.check_root(data_cfg)
    parsed = source.parse(data_cfg)
    if parsed.records.empty:
        raise UserError(f"data={source.name}: no usable records under data.root={data_cfg.root}; run `agebench data summary` to see why")
    paths = source.image_paths(parsed.records, data_cfg)
    decoded = decode_images(paths, size=size, cache_dir=cache_dir,
                            on_bad_image=str(data_cfg.get("on_bad_image", "skip")),
                            preprocessing={"size": size, "crop": data_cfg.get("face_crop", None)})
    records = parsed.records[decoded.kept].reset_index(drop=True)
    skipped = pd.concat([parsed.skipped, decoded.skipped_table()], ignore_index=True)
    for note in parsed.notes:
        log.info("%s: %s", source.name, note)
    return LoadedDataset(source.name, records, decoded.images, skipped, parsed.notes,
                         source.native_age_bins, parsed.race_names)


def clear_loaded() -> None:
    _LOADED.clear()


