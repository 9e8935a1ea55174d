"""``flopdispatch plan SPEC --mesh fsdp=64,tp=8 [--mesh ...]``: simulate a rank of each mesh and
print its table, or one comparison table for several meshes. A subcommand module of
``flopdispatch.commands`` (registered there by its dotted path): ``add_parser`` adds the subcommand
to an argparse subparsers object, ``run(args, argv)`` returns the exit status (2: bad input, one
line on stderr)."""
from __future__ import annotations

import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers, parents=None):
    p = subparsers.add_parser("plan", help="simulate a rank of a DDP / FSDP2 / tensor-parallel job on a mesh",
                              description="Simulate rank R of a training job on the fake process-group backend "
                                          "(fake tensors, torch's own parallelism) and print its compute, "
                                          "collectives per mesh dimension, memory (and whether it fits the "
                                          "device) and step-time estimate.")
    p.add_argument("spec", help="a model spec: hf:<model_type> or package.module:factory")
    p.add_argument("--config", action="append", metavar="KEY=VALUE|FILE.json", help="hf: config attributes")
    p.add_argument("--mesh", action="append", required=True, metavar="DIM=N,...",
                   help="mesh dimensions (dp, fsdp, tp, pp); repeat to compare meshes")
    p.add_argument("--world", type=int, help="world size (lets one dimension be -1)")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--all-stages", action="store_true",
                   help="one rank per pipeline stage (a pp dimension), a line per stage and the job estimate")
    p.add_argument("--batch", type=int, default=None, help="sequences per data-parallel replica (default 1)")
    p.add_argument("--global-batch", type=int, default=None, metavar="N",
                   help="sequences per step over the whole job instead of --batch: each mesh runs N / (dp x fsdp) "
                        "per replica (compare meshes at the same work); a pp mesh one micro-batch per sequence "
                        "unless --microbatches is given")
    p.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    p.add_argument("--plan", default=None, help="built-in plan: llama or fsdp (default: llama when it fits)")
    p.add_argument("--mixed-precision", default=None, metavar="DTYPE", help="FSDP2 param dtype (bf16)")
    p.add_argument("--reduce-dtype", default="fp32", metavar="DTYPE", help="FSDP2 gradient reduce dtype")
    p.add_argument("--reshard-after-forward", choices=("true", "false"), default=None)
    p.add_argument("--microbatches", type=int, default=None,
                   help="pipeline micro-batches (with a pp dimension; default 1, or one per sequence with "
                        "--global-batch)")
    p.add_argument("--schedule", choices=("gpipe", "1f1b", "interleaved1f1b", "loopedbfs"), default="1f1b",
                   help="pipeline schedule")
    p.add_argument("--virtual-stages", type=int, default=None, metavar="V",
                   help="pipeline chunks per rank (interleaved1f1b, loopedbfs; default 2)")
    p.add_argument("--stage-layers", default=None, metavar="N,N,...",
                   help="decoder layers per pipeline chunk (default: equal, or balanced with the embedding and "
                        "the head counted as one layer each)")
    p.add_argument("--sequence-parallel", action="store_true",
                   help="tensor parallel with sequence parallel (plan llama)")
    p.add_argument("--loss-parallel", action="store_true",
                   help="tensor parallel: the logits stay split on the vocabulary into the loss (plan llama, no pp)")
    p.add_argument("--checkpoint", action="store_true", help="activation checkpointing of every layer")
    p.add_argument("--optimizer", choices=("adamw", "sgd", "none"), default="adamw")
    p.add_argument("--device", default="H100", help="device for the step-time estimate (H100, A100, ...)")
    p.add_argument("--memory-fraction", type=float, default=None, metavar="F",
                   help="the part of the device's memory a rank may fill (default 0.9: CUDA context, NCCL "
                        "buffers, fragmentation)")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.set_defaults(run=run)
    return p


def run(args, argv=None) -> int:
    from ..hardware import device_spec
    from ..inputs import SpecError
    from ..models import BuildError, parse_config
    from .errors import PlanError
    from .estimate import compare_text
    from .simulate import simulate

    try:
        device_spec(args.device).usable_memory(args.memory_fraction)  # checks the device and the fraction
        config = parse_config(args.config) if args.config else None
        reshard = None if args.reshard_after_forward is None else args.reshard_after_forward == "true"
        from .simulate import stage_ranks

        stage_layers = None
        if args.stage_layers is not None:
            try:
                stage_layers = [int(n) for n in args.stage_layers.split(",")]
            except ValueError:
                raise PlanError(f"--stage-layers {args.stage_layers!r}: expected layer counts like 7,8,8,7") from None
        from .mesh import parse_mesh, replica_batch

        # every stage of a pipeline mesh with --all-stages, or when meshes are compared (a row per job)
        every = args.all_stages or len(args.mesh) > 1
        jobs = [(mesh, rank) for mesh in args.mesh
                for rank in (stage_ranks(mesh, args.world) if every and "pp" in parse_mesh(mesh, args.world)
                             else [args.rank])]
        if args.global_batch is not None and args.batch is not None:
            raise PlanError("pass --batch (per data-parallel replica) or --global-batch (per step), not both")

        def batch_of(mesh):
            if args.global_batch is None:
                return 1 if args.batch is None else args.batch
            return replica_batch(parse_mesh(mesh, args.world), args.global_batch)

        def microbatches_of(mesh):
            if args.microbatches is not None:
                return args.microbatches
            return batch_of(mesh) if args.global_batch is not None and "pp" in parse_mesh(mesh, args.world) else 1

        sims = [simulate(args.spec, mesh, rank=rank, batch=batch_of(mesh), seq=args.seq, config=config,
                         parallelize=args.plan, mixed_precision=args.mixed_precision,
                         reduce_dtype=args.reduce_dtype, reshard_after_forward=reshard,
                         optimizer=None if args.optimizer == "none" else args.optimizer,
                         gpus_per_node=args.gpus_per_node, world=args.world, checkpoint=args.checkpoint,
                         microbatches=microbatches_of(mesh), schedule=args.schedule,
                         sequence_parallel=args.sequence_parallel, virtual_stages=args.virtual_stages,
                         stage_layers=stage_layers, loss_parallel=args.loss_parallel)
                for mesh, rank in jobs]
    except (PlanError, SpecError, BuildError, ValueError) as e:
        print(f"flopdispatch plan: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    from .estimate import pipeline_jobs, stages_text

    for sim in sims:
        print(sim.table(args.device, fraction=args.memory_fraction))
        print()
    groups = pipeline_jobs(sims)
    for group in groups:
        if len(group) > 1:
            print(stages_text(group, args.device, fraction=args.memory_fraction))
            print()
    if len(groups) > 1:
        print(compare_text(sims, args.device, fraction=args.memory_fraction))
    return 0
