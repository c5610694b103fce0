"""The ``cocattn`` command. Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a function taking the parsed
``argparse.Namespace`` and returning an exit code); a sub-command with actions of its own stores
the action in ``<command>_command``. The functions it calls are the Python API.

Errors are turned into one line on stderr and an exit code here, for every sub-command alike, by
the table in :mod:`cocattn.errors` (0 success, 1 the work failed, 2 bad input, 130 interrupted)."""

from __future__ import annotations

import argparse
import importlib
import sys

from cocattn.errors import USAGE, describe, exit_code

# Sub-command modules, in the order `cocattn --help` lists them.
COMMANDS = ["data", "train", "eval", "analyze", "reproduce", "lab", "report", "bench", "convert"]


def build_parser() -> argparse.ArgumentParser:
    from cocattn import __version__

    parser = argparse.ArgumentParser(
        prog="cocattn",
        description="Collinear Constrained Attention (CoCA): train, evaluate and compare length extrapolation.",
    )
    parser.add_argument("--version", action="version", version=f"cocattn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cocattn.cli.{name}")
        except ModuleNotFoundError as err:  # a sub-command not built yet
            if err.name == f"cocattn.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _name(args: argparse.Namespace) -> str:
    """``cocattn train``, ``cocattn data build``: the command as typed, for its error line."""
    action = getattr(args, f"{args.command}_command", None)
    return " ".join(["cocattn", args.command, *([action] if isinstance(action, str) else [])])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # intermixed: `train.steps=60 --resume train.lr=1e-3` keeps both overrides, in order
        if isinstance(getattr(args, "overrides", None), list) and all(
            "=" in e and not e.startswith("-") for e in extras
        ):
            args.overrides = [*args.overrides, *extras]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE
    try:
        if isinstance(getattr(args, "out", None), str):  # every --out: writable, checked before any work
            from cocattn.files import check_writable

            check_writable(args.out, "--out")
        from cocattn._malloc import keep_freed_memory

        keep_freed_memory()  # freed memory kept for reuse: no per-step mmap/munmap
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as err:
        code = exit_code(err)
        if code is None:  # not an error the command expects: a defect, keep the traceback
            raise
        print(f"{_name(args)}: {describe(err)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
