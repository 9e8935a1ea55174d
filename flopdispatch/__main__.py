"""Command line: ``flopdispatch demo`` (or ``python -m flopdispatch demo``)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="flopdispatch", description="Exact FLOPs/MACs/bytes for PyTorch code.")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="count a GPT-2-small training step on the meta device")
    demo.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    demo.add_argument("--seq", type=int, default=1024, help="tokens per sequence (default 1024)")
    demo.add_argument("--device", default="meta", help="meta (default) or cpu")
    demo.add_argument("--depth", type=int, default=2, help="module tree depth shown (default 2)")
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2
    if args.batch < 1 or not 1 <= args.seq <= 1024:
        parser.error("--batch must be >= 1 and --seq between 1 and 1024")
    from ._demo import run_demo

    run_demo(batch=args.batch, seq=args.seq, device=args.device, depth=args.depth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
