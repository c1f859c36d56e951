"""Dataset sources: one module per on-disk format, each registering a `DatasetSource`.

A source parses metadata into the record table (agebench.data.records) and says where each record's
image file lives; `agebench.data.loading.load_dataset` turns that into records + a decoded uint8
image array via the decode-once cache. Synthetic data renders its images instead of reading files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from agebench.data.binning import AgeBins
from agebench.data.records import ParsedRecords
from agebench.errors import UserError


class DatasetSource:
    """Base class. Subclasses set the class attributes `name`, `tasks` (the labels the format can
    carry) and, for datasets that give age groups rather than years, `native_age_bins`."""

    name: str = ""
    tasks: tuple[str, ...] = ("age", "gender", "race")
    native_age_bins: AgeBins | None = None
    needs_root: bool = True

    def parse(self, data_cfg) -> ParsedRecords:  # pragma: no cover
        raise NotImplementedError

    def image_paths(self, records: pd.DataFrame, data_cfg) -> list[Path]:
        """Absolute image path per record (default: data.root / records.image)."""
        root = Path(data_cfg.root)
        return [root / p for p in records["image"]]

    def check_root(self, data_cfg) -> Path:
        root = data_cfg.get("root")
        if not root:
            raise UserError(f"data={self.name} needs data.root=<dir> pointing at the dataset on disk")
        path = Path(str(root)).expanduser()
        if not path.is_dir():
            raise UserError(f"data.root={root} does not exist or is not a directory; point it at the {self.name} dataset")
        try:  # listing it is what parsing does first; unreadable, it would look like an empty dataset
            with os.scandir(path) as entries:
                next(entries, None)
        except PermissionError:
            raise UserError(f"permission denied reading data.root={root}; make it readable (chmod -R u+rX {root}) "
                            f"or run as a user who can read it") from None
        return path


_SOURCES: dict[str, type[DatasetSource]] = {}


def register_source(cls: type[DatasetSource]) -> type[DatasetSource]:
    _SOURCES[cls.name] = cls
    return cls


def get_source(name: str) -> DatasetSource:
    _import_all()
    if name not in _SOURCES:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(_SOURCES))} (conf/data/)")
    return _SOURCES[name]()


def list_sources() -> list[str]:
    _import_all()
    return sorted(_SOURCES)


def _import_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
