"""agebench: a benchmark suite for multi-task face attribute estimation (age, gender, race)."""

__version__ = "0.1.0"
