"""The `agebench` command line: `main` (the entry point: one Hydra app per command, one-line user errors),
`commands` (the command table: name → task function and root config) and `help` (`agebench <command>
--help`, read from the config files)."""
