"""flopdispatch: exact FLOPs, MACs, bytes and parameters per aten op, module and phase.

    import flopdispatch as fd
    with fd.count(model) as c:
        model(x)
    print(c.macs, c.flops, c.module("layer1").flops)
    print(c.table())
    fd.Report.from_count(c).save("run.json")   # flopdispatch show run.json
    c = fd.profile(fd.build_model("hf:llama", {"num_hidden_layers": 2}), "1x128:int64")
"""
from .counter import PHASES, Counts, ModuleCounts, count, profile
from .meter import Meter, StepStats
from .hardware import DEVICES, DeviceSpec, Estimate, Roofline, device_spec, estimate, measure_cpu_peak, mfu, roofline
from .inputs import SpecError
from .models import build_model
from .report import human
from .rules import RuleOfThumb, rule_of_thumb
from .schema import Report, ReportError
from .symbolic import SymbolicCount, SymbolicCounts, symbolic
from .user import Cost, formula, remove_formula
from ._version import __version__

__all__ = ["count", "profile", "build_model", "SpecError", "symbolic", "SymbolicCount", "SymbolicCounts", "Counts",
           "ModuleCounts", "PHASES", "human", "rule_of_thumb", "RuleOfThumb", "Report", "ReportError", "DEVICES",
           "DeviceSpec", "Estimate", "Roofline", "device_spec", "estimate", "measure_cpu_peak", "mfu", "roofline",
           "formula", "Cost", "remove_formula", "Meter", "StepStats", "__version__"]
