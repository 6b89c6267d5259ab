"""The `depthsense` command line: a parser per command group, each command a few lines that
call the library. Only `main` turns errors into an exit code.

Parsing imports nothing heavy (no JAX, no TensorFlow): `--help` and argument errors answer at
once, and each command imports what it needs when it runs. Three words that sound alike name
three jobs: `speed` (how fast: the speed benchmarks), `zero-shot` (how accurate on the
field's benchmark datasets) and `validate` (a training workdir's own validation split); the
older spellings `bench`, `benchmark` and `eval` still work as aliases."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from depthsense_jax import __version__
from depthsense_jax.cli import data, demo, model, predict, speed, train, zero_shot

# Errors whose message says what to change: printed without a traceback, exit code 2.
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthsense",
        description="Monocular relative depth in JAX: losses, models, training and tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (data, train, predict, zero_shot, speed, model, demo):
        group.add(commands)
    return parser


class _DropTfdsDeprecation(logging.Filter):
    """tfds warns about its own use of FeatureConnector.dtype on every dataset it opens."""

    def filter(self, record) -> bool:
        return "FeatureConnector.dtype" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    from depthsense_jax import runtime
    from depthsense_jax.errors import RunError

    # The entry point sets the process up before anything starts JAX or TensorFlow.
    runtime.configure()
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.getLogger("absl").addFilter(_DropTfdsDeprecation())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF only decodes and resizes images here; its oneDNN notice on import is noise.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if a.startswith("--config.")]
    unknown = [a for a in extra if not a.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    if overrides and not hasattr(args, "config"):
        parser.error(f"{args.command} takes no config overrides: {' '.join(overrides)}")
    args.overrides = overrides
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RunError) as err:
        # Bad configs, overrides, paths and data, and runs stopped for a stated reason: the
        # message says what to change; a traceback would only hide it.
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
