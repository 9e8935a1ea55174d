"""``flopdispatch model ... --symbolic batch,seq``: the command line's glue to ``fd.symbolic``
(the semantics live in ``symbolic.py``)."""
from __future__ import annotations

import sys

from ._shared import CLIError, command_line, emit


def run_symbolic(model, args_in, kwargs, texts, args, argv, target) -> int:
    """``model ... --symbolic batch,seq``: the table of polynomials, and the report (counts at the
    inputs' own sizes) with a ``symbolic`` field for --json / --html. The names are given to the
    input tensors' dims by position (``symbolic.dims_from_tensors``)."""
    from ..schema import Report, default_meta
    from ..symbolic import dims_from_tensors, symbolic

    if args.ignore or args.timing:
        raise CLIError("--symbolic counts FLOPs, MACs and bytes only: --ignore and --timing do not apply")
    try:
        inputs, keyword_inputs, dims, sizes = dims_from_tensors(args_in, kwargs, args.symbolic.split(","))
        s = symbolic(model, inputs, dims, train=args.train, keyword_inputs=keyword_inputs, device=args.device)
        at_inputs = s.retrace(**sizes)  # the report's totals: the inputs' sizes (a size of 1 is traced at 2)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--symbolic: {e}") from None
    if not args.quiet and args.json != "-":
        print(s.table(depth=args.depth if args.depth is not None else 2, field="flops", notes=False))
        for field in ("macs", "bytes"):
            print()
            print(s.table(depth=0, field=field, notes=field == "bytes").split("\n", 2)[-1])
    meta = default_meta(mode="model", target=target, command=command_line(argv), train=bool(args.train),
                        inputs=texts, model_class=type(model).__name__)
    report = Report.from_count(at_inputs.count, meta=meta)
    report.symbolic = s.to_dict()
    if args.json or args.html:
        args.quiet = True
        emit(report, args, sys.stdout)
    return 0
