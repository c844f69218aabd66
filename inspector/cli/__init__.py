"""Command line: ``main(argv, env) -> exit status``; one module per subcommand.

The CLI owns all argument parsing and terminal output; stages never print or parse
arguments.  It builds the run's ``Settings`` once from the arguments and ``env``
(the environment, injected so tests need not touch ``os.environ``), picks a source
and sinks, and calls ``inspector.pipeline.run``.

Adding a subcommand is one module here plus its name in ``COMMANDS``: the module has
``add_parser(subparsers)`` (argparse only, cheap to import: ``inspector --help``
imports every one) and ``run(args, env) -> int`` (heavy imports inside).

Exit status: 0 done; 1 findings (``--fail-on``, signature problems, failed captures);
2 usage error, bad config, or no readable input (one line on stderr).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__

#: Subcommand modules, in ``--help`` order (``inspector.cli.<name>``).
COMMANDS = ("scan", "live", "batch", "report", "fingerprint", "signatures", "carve", "explain", "evidence")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _UsageError(f"{self.prog}: error: {message}")


def command_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inspector", description="Network traffic inspector for warehouse and DC networks.")
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMANDS:
        command_module(name).add_parser(sub)
    return p


def main(argv=None, env=None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]) with environment ``env`` (default:
    os.environ); returns the exit status."""
    env = dict(os.environ) if env is None else env
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    if args.command is None:
        print(f"inspector: error: a command is required ({', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return command_module(args.command).run(args, env)
