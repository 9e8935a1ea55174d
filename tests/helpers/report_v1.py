"""A saved report written as the older ``flopdispatch.report/1`` files were (for the tests that
check old files still load): each module's own ops as its ``self_ops``, no scopes."""
import copy


def as_v1(d: dict, self_ops: bool = True) -> dict:
    """The report/1 form of a report/2 dict ``d`` (``Report.to_dict()``)."""
    d = copy.deepcopy(d)
    own = {i: {} for i in range(len(d["modules"]))}
    for s in d.pop("scopes"):
        if s["module"] >= 0:
            for p, ops in s.get("ops", {}).items():
                table = own[s["module"]].setdefault(p, {})
                for op, row in ops.items():
                    acc = table.setdefault(op, [0] * 6)
                    for k in range(6):
                        acc[k] += row[k]
    for i, m in enumerate(d["modules"]):
        m.pop("rolled_up", None)
        if self_ops:
            m["self_ops"] = own[i]
    for k in ("timed", "ignored", "missing"):
        d.pop(k, None)
    d["schema"] = "flopdispatch.report/1"
    return d
