"""flopdispatch: exact FLOPs, MACs, bytes and parameters per aten op, module and phase.

    import flopdispatch as fd
    with fd.count(model) as c:
        model(x)
    print(c.macs, c.flops, c.module("layer1").flops)
    print(c.table())
    fd.Report.from_count(c).save("run.json")   # flopdispatch show run.json
"""
from .counter import PHASES, Counts, ModuleCounts, count, profile
from .meter import Meter, StepStats
from .hardware import DEVICES, DeviceSpec, Estimate, Roofline, device_spec, estimate, measure_cpu_peak, mfu, roofline
from .report import human
from .rules import RuleOfThumb, rule_of_thumb
from .schema import Report, ReportError
from .user import Cost, formula, remove_formula

__version__ = "0.1.0"
__all__ = ["count", "profile", "Counts", "ModuleCounts", "PHASES", "human", "rule_of_thumb", "RuleOfThumb",
           "Report", "ReportError", "DEVICES", "DeviceSpec", "Estimate", "Roofline", "device_spec", "estimate",
           "measure_cpu_peak", "mfu", "roofline", "formula", "Cost", "remove_formula", "__version__",
           "Meter", "StepStats"]
