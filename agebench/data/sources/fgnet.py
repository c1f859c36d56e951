"""FG-NET: 1,002 images of 82 subjects, labels in the file names.

On disk (`data.root`, searched recursively, e.g. FGNET/images/)::

    <3-digit subject id>A<2-digit age>[a|b].JPG      e.g. 001A02.JPG, 001A43a.JPG, 069A08b.jpg

Case and extension vary (`.JPG`, `.jpg`, `.jpeg`, `a`/`A` suffixes). Age only (no gender or race);
the standard protocol is leave-one-person-out: `protocol=lopo` (82 folds, one per subject).
Image files whose names do not follow the pattern are skipped and reported.
"""

from __future__ import annotations

import re

import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import list_images, root_of, skipped_frame
from agebench.errors import UserError

NAME = re.compile(r"^(\d{3})A(\d{2})([AB])?\.(JPE?G|PNG|BMP|GIF|TIFF?)$", re.IGNORECASE)


def parse_name(filename: str) -> tuple[str, float] | None:
    match = NAME.match(filename.split("/")[-1])
    if not match:
        return None
    return match.group(1), float(match.group(2))


@register_source
class FGNet(DatasetSource):
    name: str = "fgnet"
    tasks: tuple[str, ...] = ("age",)

    def parse(self, data_cfg) -> ParsedRecords:
        root = root_of(data_cfg)
        files = list_images(root)
        if not files:
            raise UserError(f"no images under data.root={root}; point it at the FG-NET images folder (001A02.JPG, ...)")
        rows, skipped = [], []
        for rel in files:
            parsed = parse_name(rel)
            if parsed is None:
                skipped.append(("malformed name: expected <3-digit id>A<2-digit age>[a|b].jpg", rel))
                continue
            subject, age = parsed
            rows.append({"image": rel, "subject": subject, "age": age})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age"])
        n_subjects = frame["subject"].nunique()
        notes = [f"age only; {n_subjects} subjects — use protocol=lopo for leave-one-person-out ({n_subjects} folds)"]
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), notes)
