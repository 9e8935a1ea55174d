"""flopdispatch: exact FLOPs, MACs, bytes and parameters per aten op, module and phase.

    import flopdispatch as fd
    with fd.count(model) as c:
        model(x)
    print(c.macs, c.flops, c.module("layer1").flops)
    print(c.table())
    fd.Report.from_count(c).save("run.json")   # flopdispatch show run.json
    c = fd.profile(fd.build_model("hf:llama", {"num_hidden_layers": 2}), "1x128:int64")

The names below load on first use (PEP 562): ``import flopdispatch`` alone imports neither torch
nor transformers, so the command line's ``show`` and ``--help`` start at once; ``fd.count`` loads
torch, and transformers loads only when an ``hf:`` model is built.
"""
from ._version import __version__

# public name -> the module (of this package) that defines it
_EXPORTS = {
    "count": "counter", "profile": "counter", "Counts": "counter", "ModuleCounts": "counter", "PHASES": "counter",
    "Meter": "meter", "StepStats": "meter",
    "DEVICES": "hardware", "DeviceSpec": "hardware", "Estimate": "hardware", "Roofline": "hardware",
    "device_spec": "hardware", "estimate": "hardware", "measure_cpu_peak": "hardware", "mfu": "hardware",
    "roofline": "hardware",
    "SpecError": "inputs",
    "build_model": "models",
    "human": "report",
    "RuleOfThumb": "rules", "rule_of_thumb": "rules",
    "Report": "schema", "ReportError": "schema",
    "SymbolicCount": "symbolic", "SymbolicCounts": "symbolic", "symbolic": "symbolic",
    "Cost": "user", "formula": "user", "remove_formula": "user",
}

__all__ = ["count", "profile", "build_model", "SpecError", "symbolic", "SymbolicCount", "SymbolicCounts", "Counts",
           "ModuleCounts", "PHASES", "human", "rule_of_thumb", "RuleOfThumb", "Report", "ReportError", "DEVICES",
           "DeviceSpec", "Estimate", "Roofline", "device_spec", "estimate", "measure_cpu_peak", "mfu", "roofline",
           "formula", "Cost", "remove_formula", "Meter", "StepStats", "plan", "__version__"]

_SUBMODULES = {"plan"}  # public subpackages: fd.plan.simulate(...)


def __getattr__(name: str):
    """Load the module that defines `name` on first use, and keep the name here (later uses are
    plain attribute reads)."""
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(type(__import__("sys"))):
    """``fd.symbolic`` is the function, though a submodule of the same name exists: importing
    ``flopdispatch.symbolic`` sets the package's attribute to the module, which this ignores."""

    @property
    def symbolic(self):
        from .symbolic import symbolic

        return symbolic

    @symbolic.setter
    def symbolic(self, value):
        pass


__import__("sys").modules[__name__].__class__ = _Package
