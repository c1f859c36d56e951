"""Datasets, from files (or the renderer) to batches.

Members: `sources` (one parser per on-disk format, and its registry), `records` (the record table every
parser returns), `loading` (records + decoded images of a data config), `filtering` (the one "does this row
carry a label" rule), `binning` (age bins), `label_budget` (`data.age_label_fraction`), `protocols` (k-fold,
predefined, holdout, LOPO; the leakage check), `decode` and `cache` (decode once into a memory-mapped
array), `datamodule` and `augment` (batches, crops, flips on the device), `render` (the synthetic faces),
`summary` (counts, histograms, skipped rows) and `command` (`agebench data summary`).
"""
