"""The embedded synthetic-faces dataset (rendered by agebench.data.render)."""

from __future__ import annotations

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source


def synthetic_spec(data_cfg):
    """The renderer's spec for a data config. `image_budget` (when set) fixes the number of faces instead of
    the number of people: n_subjects = image_budget // images_per_subject (the leakage study's design)."""
    from agebench.data.render import SyntheticSpec

    budget = data_cfg.get("image_budget")
    n_subjects = max(1, int(budget) // int(data_cfg.images_per_subject)) if budget else int(data_cfg.n_subjects)
    return SyntheticSpec(
        n_subjects=n_subjects,
        images_per_subject=int(data_cfg.images_per_subject),
        image_size=int(data_cfg.load_size or data_cfg.image_size),
        age_range=tuple(float(a) for a in data_cfg.age_range),
        age_spread=float(data_cfg.age_spread),
        label_noise=float(data_cfg.label_noise),
        gender_specific_aging=float(data_cfg.gender_specific_aging),
        nuisance=float(data_cfg.nuisance),
        seed=int(data_cfg.get("seed", 0) or 0),
    )


@register_source
class Synthetic(DatasetSource):
    name: str = "synthetic"
    needs_root: bool = False

    def parse(self, data_cfg) -> ParsedRecords:
        # labels only (no pixels drawn); images come from render(), through the cache
        from agebench.data.render import generate_labels

        labels = generate_labels(synthetic_spec(data_cfg))
        return ParsedRecords(normalise(labels, self.name), race_names=self._race_names())

    def render(self, data_cfg):
        from agebench.data.render import generate

        workers = data_cfg.get("render_workers")
        return generate(synthetic_spec(data_cfg), workers=int(workers) if workers else None)

    @staticmethod
    def _race_names():
        from agebench.data.render import RACE_NAMES

        return tuple(RACE_NAMES)
