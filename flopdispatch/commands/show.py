"""``flopdispatch show REPORT.json [options]``: a saved report rendered again; several reports (one
per rank, ``out.rank*.json``) as one job. Imports no torch."""
from __future__ import annotations

import argparse
import sys

from ._shared import CLIError, check_output_paths, emit


def add_parser(subparsers, parents) -> argparse.ArgumentParser:
    show = subparsers.add_parser("show", parents=[parents.display], help="render a saved JSON report again",
                                 description="Render a report saved with --json (same display options). Several "
                                             "reports (one per rank, out.rank*.json, each rank once, one job): a "
                                             "per-rank table with the job's totals and the imbalance between "
                                             "ranks; with --by op or --by phase, each op's (phase's) figure on "
                                             "every rank (FLOPs, or the --sort figure).")
    show.add_argument("report", metavar="REPORT.json", nargs="+")
    return show


def run(args, argv) -> int:
    """Load the report(s) and render them again (no torch); several files as one job's ranks."""
    from .. import comm
    from ..report import _Fmt
    from ..schema import Report, ReportError

    check_output_paths(args)
    try:
        reports = [Report.load(path) for path in args.report]
    except ReportError as e:
        raise CLIError(str(e)) from None
    if len(reports) == 1:
        emit(reports[0], args, sys.stdout)
        return 0
    # one report per rank: the job
    if args.json or args.html:
        raise CLIError("show: --json and --html take one report (several are shown as a per-rank table)")
    try:
        comm.check_ranks(reports, args.report)
    except ValueError as e:
        raise CLIError(f"show: {e}") from None
    if args.quiet:
        return 0
    fmt = _Fmt(args.units)
    if args.by == "module":
        lines = comm.rank_table(reports, args.report, fmt)
    else:
        figure = args.sort if args.sort in ("flops", "macs", "bytes") else "flops"
        lines = comm.rank_breakdown(reports, args.report, args.by, figure, fmt)
    print("\n".join(lines))
    return 0
