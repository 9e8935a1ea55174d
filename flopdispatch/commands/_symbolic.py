"""``flopdispatch model ... --symbolic batch,seq``: the command line's glue to ``fd.symbolic``
(the semantics live in ``symbolic.py``)."""
from __future__ import annotations

import sys

from ._shared import CLIError, command_line, emit


def run_symbolic(model, args_in, kwargs, texts, args, argv, target) -> int:
    """``model ... --symbolic batch,seq``: the table of polynomials, and the report (counts at the
    traced sizes) with a ``symbolic`` field for --json / --html. The names are given to the input
    tensors' dims by position (an empty name keeps that dim's size)."""
    from ..schema import Report, default_meta
    from ..symbolic import symbolic

    if args.ignore or args.timing:
        raise CLIError("--symbolic counts FLOPs, MACs and bytes only: --ignore and --timing do not apply")
    names = [n.strip() for n in args.symbolic.split(",")]
    dims = {}

    def named(tensor):
        entries = []
        for i, size in enumerate(tensor.shape):
            name = names[i] if i < len(names) else ""
            if not name:
                entries.append(size)
                continue
            if not name.isidentifier():
                raise CLIError(f"--symbolic: {name!r} is not a name (letters, digits, _)")
            traced = max(size, 2)  # PyTorch pins sizes 0 and 1: trace at 2, the formula is the same
            if dims.setdefault(name, traced) != traced:
                raise CLIError(f"--symbolic: {name} has two sizes in the inputs ({dims[name]} and {traced})")
            entries.append(name)
        return (entries, tensor.dtype)

    inputs = [named(t) for t in args_in]
    keyword_inputs = {k: named(t) for k, t in kwargs.items()}
    if not dims:
        raise CLIError("--symbolic: name at least one dim, e.g. --symbolic batch,seq")
    try:
        s = symbolic(model, inputs, dims, train=args.train, keyword_inputs=keyword_inputs)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--symbolic: {e}") from None
    if not args.quiet and args.json != "-":
        print(s.table(depth=args.depth if args.depth is not None else 2, field="flops", notes=False))
        for field in ("macs", "bytes"):
            print()
            print(s.table(depth=0, field=field, notes=field == "bytes").split("\n", 2)[-1])
    meta = default_meta(mode="model", target=target, command=command_line(argv), train=bool(args.train),
                        inputs=texts, model_class=type(model).__name__)
    report = Report.from_count(s.count, meta=meta)
    report.symbolic = s.to_dict()
    if args.json or args.html:
        args.quiet = True
        emit(report, args, sys.stdout)
    return 0
