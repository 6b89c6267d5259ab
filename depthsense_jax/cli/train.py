"""`depthsense train` and `depthsense validate` (old name: `eval`)."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import config_parent, load_config, positive_int, renamed


def _train(args: argparse.Namespace) -> int:
    from depthsense_jax.train import loop, sharding

    config = load_config(args)
    # Before anything touches a device: a multi-host run joins its peers here.
    sharding.maybe_initialize_distributed(args.coordinator, args.num_processes,
                                          args.process_id, force=args.distributed)
    loop.train_and_evaluate(config, args.workdir, progress=True)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from depthsense_jax.train import validation

    validation.validate_checkpoint(args.workdir, args.split, args.checkpoint, args.max_batches)
    return 0


def add(commands) -> None:
    train = commands.add_parser(
        "train", parents=[config_parent("synthetic")],
        help="train a model (resumes from the workdir's latest checkpoint)",
        description="Train the model a config describes (default: synthetic, the small "
        "built-in DepthNet on synthetic scenes), in WORKDIR: checkpoints, metrics.jsonl, "
        "TensorBoard and the validation table each epoch; a rerun resumes.")
    train.add_argument("--workdir", required=True,
                       help="folder or URL (gs://bucket/run) for checkpoints and logs")
    multi = train.add_argument_group(
        "multi-host", "jax.distributed is initialised automatically on multi-host Cloud TPU, "
        "Slurm and Open MPI, or when JAX_COORDINATOR_ADDRESS is set; these flags set it by hand")
    multi.add_argument("--coordinator", help="host:port of process 0 (JAX_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=positive_int,
                       help="processes in the run (JAX_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, help="this process, 0-based (JAX_PROCESS_ID)")
    multi.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize() even if nothing above says so")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "validate", aliases=["eval"],
        help="a workdir's checkpoint scored on its own data's split",
        description="Load a training workdir's config and checkpoint (its params only) and "
        "print the loss, WHDR, SSIM, MSE, AbsRel and delta1 on a split of the run's own data, "
        "as training's validation does; also written to WORKDIR/eval/. For the field's "
        "benchmark datasets, see `depthsense zero-shot`." + renamed("eval"))
    evaluate.add_argument("--workdir", required=True,
                          help="the training workdir (a folder or gs:// URL)")
    evaluate.add_argument("--split", default="validation", help="split (default validation)")
    evaluate.add_argument("--checkpoint", default="latest",
                          help="'latest', 'best' (lowest validation WHDR) or a step number")
    evaluate.add_argument("--max-batches", type=positive_int,
                          help="score only this many batches (default: the whole split)")
    evaluate.set_defaults(func=_validate)
