"""Datasets: records, parsers, binning, protocols, cache and the Lightning datamodule."""
