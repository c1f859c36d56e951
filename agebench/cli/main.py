"""`agebench <command> [hydra overrides]`: one Hydra app per command, each with its root config in conf/.

User errors (UserError, an unknown config option or group choice, a malformed override) end with one
line on stderr and a non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys

from agebench.cli.commands import COMMANDS
from agebench.cli.help import command_help
from agebench.config.compose import hydra_error_line
from agebench.config.preflight import check_launcher
from agebench.errors import UserError

USAGE = "usage: agebench <command> [hydra overrides]   (agebench <command> --help: its groups and keys, described)"


def _help() -> str:
    lines = [USAGE, "", "commands:"]
    width = max(len(n) for n in COMMANDS)
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "examples:", "  agebench train experiment=quickstart",
              "  agebench train -m model=lmtcnn tasks=age,age_gender loss.gamma=0.3,0.7",
              "  agebench profile model=lmtcnn tasks=age_gender format=json",
              "  agebench sweep sweep=gamma trainer=debug sweep.n_trials=4   (studies: ls sweeps/)",
              "  agebench sweep sweep=gamma action=status",
              "  agebench report runs=outputs/quickstart",
              "  agebench regress baseline=reports/baselines/quickstart.yaml runs=outputs/quickstart"]
    return "\n".join(lines)


def _split_command(argv: list[str]) -> tuple[str, list[str]]:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv[0] in COMMANDS:
        return argv[0], argv[1:]
    if argv[0] == "data":
        raise UserError("`agebench data` needs a subcommand: agebench data summary data=<name> data.root=<dir>")
    raise UserError(f"unknown command {argv[0]!r}; run `agebench --help` for the list")


def run_hydra_command(name: str, overrides: list[str]) -> None:
    import hydra

    from agebench.paths import conf_dir

    command = COMMANDS[name]
    module_name, func_name = command.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)

    @functools.wraps(func)
    def task(cfg):
        try:
            return func(cfg)
        except UserError as err:
            # Reported here, inside the job, because Hydra writes its own "Error executing job" line
            # for any Exception that leaves a job; SystemExit is not one.
            report_error(err)
            raise SystemExit(err.exit_code) from None
        except OSError as err:
            line = filesystem_error_line(err)
            if line is None:
                raise
            report_error(line)
            raise SystemExit(2) from None

    # Let config errors reach us instead of Hydra printing its own multi-line report.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [f"agebench {name}", *overrides]
    app = hydra.main(config_path=str(conf_dir()), config_name=command.config_name, version_base="1.3")(task)
    app()


# Where a command cannot write (read-only or full file system, no permission, a file where a directory must be):
# the user's environment, not a bug of ours; one line names the path and the way out.
_FS_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}


def filesystem_error_line(err: OSError) -> str | None:
    """One line for an OSError about a path the user chose (output_dir, cache_dir, out=), or None for others."""
    if err.errno not in _FS_ERRNOS or not err.filename:
        return None
    return (f"cannot write {err.filename}: {err.strerror}; choose a writable place (output_dir=, cache_dir=, out=) "
            f"or free space there")


def report_error(message) -> None:
    print(f"agebench: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(_help(), flush=True)  # flushed here, so a reader that left raises inside the try
            return 0
        name, overrides = _split_command(argv)
        if "--help" in overrides or "-h" in overrides:  # the command's groups and keys, described (cli_help.py)
            print(command_help(name, [o for o in overrides if o not in ("--help", "-h")]), flush=True)
            return 0
        check_launcher(overrides)  # hydra/launcher=slurm_gpu without Slurm: one line before Hydra launches
        run_hydra_command(name, overrides)
    except UserError as err:
        report_error(err)
        return err.exit_code
    except KeyboardInterrupt:  # Ctrl-C in eval, export, report, …: one line, not Python's traceback (train stops
        # at a safe point itself and exits 130 through agebench.training.signals); writes are atomic, so nothing
        # half-written stays behind
        print(f"agebench: interrupted (Ctrl-C){f' during {argv[0]}' if argv else ''}; finished outputs are kept, "
              f"rerun the command to complete it", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `agebench ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor is the exit-time flush
        return 0
    except Exception as err:
        # an unwritable place raised outside a job (Hydra making the run dir; inside one, the task says it), else
        # a config error (Hydra's MissingConfigException is an OSError too, without an errno)
        line = (filesystem_error_line(err) if isinstance(err, OSError) else None) or hydra_error_line(err)
        if line is None:
            raise
        report_error(line)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
