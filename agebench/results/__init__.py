"""The run record contract, torch-free: everything a run writes that the report reads (and so everything
agebench.report may import besides the ground modules).

Members: `store` (results.jsonl and summary.json: atomic writes, reading records into a frame; its public
names are re-exported here), `run_identity` (what identifies a run: config hash exclusions, grouping,
pairing), `provenance` (git sha, config hash, versions, hardware), `metrics` (the metric registry: each
metric's direction, unit and label), `age_intervals` (age bins as closed intervals), `breakdown` (a
fold's per-group error: age decade, gender, race, gender×race, with bootstrap standard errors by subject) and
`uncertainty` (age AuRC, each classifier's ECE, reliability bins and the risk–coverage curve).
"""

from agebench.results.store import (  # noqa: F401  (the store's API under its package name)
    RESULTS_FILE,
    SUMMARY_FILE,
    append_record,
    atomic_write_json,
    atomic_write_text,
    load_records,
    read_records,
    summarise,
)
