"""The record table every dataset parser produces.

One row per face image. Parsers normalise their on-disk labels into these columns; a label that a
dataset does not carry (or that a row lacks) is *missing*, never guessed:

| column    | dtype   | missing | meaning                                                                 |
|-----------|---------|---------|-------------------------------------------------------------------------|
| image     | str     | —       | path relative to `data.root` (or a stable id for synthetic data)        |
| subject   | str     | —       | identity; splits never put one subject on two sides                     |
| age       | float64 | NaN     | age in years when the dataset gives one                                 |
| age_group | int64   | -1      | index into the dataset's native age groups (Adience, FairFace)          |
| gender    | int64   | -1      | 0 male, 1 female                                                        |
| race      | int64   | -1      | index into the dataset's race classes (UTKFace 5, FairFace 7)           |
| fold      | int64   | -1      | predefined fold (Adience fold files, MORPH lists)                       |
| split     | str     | ""      | predefined split: train / val / test (official splits)                  |
| source    | str     | —       | dataset name (matters for multi-source data)                            |

Rows a parser rejects go to a `skipped` table with columns `reason` and `detail`, so
`agebench data summary` can report every dropped row grouped by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS: dict[str, tuple[str, object]] = {
    "image": ("object", None),
    "subject": ("object", None),
    "age": ("float64", np.nan),
    "age_group": ("int64", -1),
    "gender": ("int64", -1),
    "race": ("int64", -1),
    "fold": ("int64", -1),
    "split": ("object", ""),
    "source": ("object", None),
}


def normalise(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add missing optional columns with their missing value, fix dtypes and column order."""
    frame = frame.copy()
    if "source" not in frame:
        frame["source"] = source
    for column, (dtype, missing) in COLUMNS.items():
        if column not in frame:
            if missing is None:
                raise ValueError(f"record table lacks required column {column!r}")
            frame[column] = missing
        if dtype == "object":
            frame[column] = frame[column].astype(str)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame[list(COLUMNS)].reset_index(drop=True)


def empty_skipped() -> pd.DataFrame:
    return pd.DataFrame({"reason": pd.Series(dtype=str), "detail": pd.Series(dtype=str)})


@dataclass
class ParsedRecords:
    """What a parser returns: the kept records and every skipped row with its reason."""

    records: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=empty_skipped)
    notes: list[str] = field(default_factory=list)  # e.g. "no subject ids: splitting by image"
    race_names: tuple[str, ...] = ()
    age_group_names: tuple[str, ...] = ()
