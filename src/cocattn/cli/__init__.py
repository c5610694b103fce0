"""The ``cocattn`` command. Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a function taking the parsed
``argparse.Namespace`` and returning an exit code). The functions it calls are the Python API."""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `cocattn --help` lists them.
COMMANDS = ["data", "train", "eval", "analyze", "reproduce", "report", "bench", "convert"]


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
        return 2
    try:
        if isinstance(getattr(args, "out", None), str):  # every --out: writable, checked before any work
            from cocattn.io import check_writable

            check_writable(args.out, "--out")
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        print(f"cocattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cocattn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
