"""Plain-text rendering of counts: human units and the module tree table."""
from __future__ import annotations

_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes, three significant digits)."""
    for scale, prefix in _SI:
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:.3g} {unit}".rstrip() if isinstance(n, float) else f"{n} {unit}".rstrip()


def format_table(counter, depth: int = 2) -> str:
    """The module tree (down to `depth` levels) with params, MACs, FLOPs, bytes and % of FLOPs."""
    total = counter.totals
    header = ("module", "type", "params", "MACs", "FLOPs", "bytes", "FLOP/B", "% FLOPs")
    rows = []
    for name in counter.module_names:
        level = 0 if name == "" else name.count(".") + 1
        if level > depth:
            continue
        m = counter.module(name)
        label = "  " * level + (name.rpartition(".")[2] if name else "(root)")
        share = 100.0 * m.flops / total.flops if total.flops else 0.0
        rows.append((label, m.type, human(m.params), human(m.macs), human(m.flops), human(m.bytes, "B"),
                     f"{m.intensity:.1f}", f"{share:.1f}"))
    outside = total.flops - (counter.module("").flops if counter.module_names else 0)
    if counter.module_names and outside:
        rows.append(("(outside the root module)", "", "", "", human(outside), "", "", f"{100.0 * outside / total.flops:.1f}"))
    rows.append(("total", "", human(counter.params), human(total.macs), human(total.flops), human(total.bytes, "B"),
                 f"{total.intensity:.1f}", "100.0" if total.flops else "0.0"))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if counter.unsupported:
        lines.append("")
        lines.append("unsupported ops (FLOPs not counted): " + ", ".join(f"{k} x{v}" for k, v in sorted(counter.unsupported.items())))
    return "\n".join(lines)
