"""Builds flopdispatch._C from csrc/ (pybind11). Needs no torch: the core reads plain shapes and dtypes.

First writes csrc/family_params.h from flopdispatch/_ops.py (csrc/gen_params.py) when it differs.

Compiles with ninja when the ``ninja`` package or binary is available (parallel, incremental), and
falls back to setuptools' own compiler loop otherwise.
"""
import os
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

HERE = Path(__file__).resolve().parent
SOURCES = sorted(str(p.relative_to(HERE)) for p in (HERE / "csrc").glob("*.cpp"))
CXXFLAGS = ["-O2", "-std=c++17", "-fvisibility=hidden", "-Wall"]


def _ninja_binary():
    try:
        import ninja  # the PyPI package ships the binary

        return os.path.join(ninja.BIN_DIR, "ninja")
    except ImportError:
        return shutil.which("ninja")


class NinjaBuildExt(build_ext):
    """Compile each extension with a generated build.ninja; link with the same compiler."""

    def build_extension(self, ext):
        ninja = _ninja_binary()
        if ninja is None or os.environ.get("FLOPDISPATCH_NO_NINJA") or sys.platform == "win32":
            return super().build_extension(ext)
        build_dir = Path(self.build_temp).resolve() / "ninja"
        build_dir.mkdir(parents=True, exist_ok=True)
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        cxx = os.environ.get("CXX") or sysconfig.get_config_var("CXX").split()[0] or "c++"
        includes = " ".join(f"-I{d}" for d in ext.include_dirs + [sysconfig.get_paths()["include"]])
        flags = " ".join(["-fPIC"] + list(ext.extra_compile_args) + CXXFLAGS)
        ldshared = "-shared" if sys.platform != "darwin" else "-bundle -undefined dynamic_lookup"
        lines = [
            f"cxx = {cxx}",
            f"rule cc\n  command = $cxx -MMD -MF $out.d {flags} {includes} -c $in -o $out\n  depfile = $out.d\n  deps = gcc",
            f"rule link\n  command = $cxx {ldshared} $in -o $out",
        ]
        objects = []
        for src in ext.sources:
            obj = build_dir / (Path(src).stem + ".o")
            objects.append(str(obj))
            lines.append(f"build {obj}: cc {(HERE / src).resolve()}")
        lines.append(f"build {target}: link {' '.join(objects)}")
        (build_dir / "build.ninja").write_text("\n".join(lines) + "\n")
        subprocess.check_call([ninja, "-C", str(build_dir)])


# csrc/family_params.h: the families' parameter layout, generated from flopdispatch/_ops.py (one source)
runpy.run_path(str(HERE / "csrc" / "gen_params.py"))["write"]()

ext = Pybind11Extension("flopdispatch._C", SOURCES, cxx_std=17, extra_compile_args=["-O2"])
setup(ext_modules=[ext], cmdclass={"build_ext": NinjaBuildExt})
