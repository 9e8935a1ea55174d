#!/usr/bin/env bash
# Run the test suite against another torch release, in a venv of its own:
#
#     scripts/test-torch.sh 2.14.1 [--torchvision 0.29.1] [--venv DIR] [-- PYTEST ARGS...]
#
# Makes DIR (default .venv-torch-VERSION) with torch==VERSION (and torchvision when given), then
# the [test] and [hf] extras by name from pyproject.toml (never `pip install -e .[test]`, whose
# torch range would reject a release outside it), builds the compiled core in place and runs
# pytest with this checkout on PYTHONPATH. An existing DIR is reused. Default pytest arguments:
# -q tests. Exit status: pytest's (2 for a bad command line).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 TORCH_VERSION [--torchvision VERSION] [--venv DIR] [-- PYTEST ARGS...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
version=$1; shift
[[ $version =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?([a-z0-9.+]*)$ ]] || { echo "not a torch version: $version" >&2; exit 2; }
vision="" venv=".venv-torch-$version"
while [ $# -gt 0 ]; do
  case $1 in
    --torchvision) [ $# -ge 2 ] || usage; vision=$2; shift 2 ;;
    --venv) [ $# -ge 2 ] || usage; venv=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || set -- -q tests
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip() { "$venv/bin/python" -m pip "$@"; }
pip install -q "torch==$version" ${vision:+"torchvision==$vision"}
# the extras' packages by name (one source: pyproject.toml), torch left as installed
mapfile -t extras < <(python3 - <<'PY'  # tomllib: Python >= 3.11 (the venv may be 3.10)
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for req in project["dependencies"] + extras["test"] + extras["hf"]:
    if not re.match(r"(flopdispatch|torch)\b", req):
        print(req)
print("ninja")  # optional: a parallel build of the core
PY
)
pip install -q "${extras[@]}"
export PYTHONPATH=$PWD
"$venv/bin/python" setup.py -q build_ext --inplace >/dev/null
"$venv/bin/python" -c 'import sys, torch, flopdispatch; print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, flopdispatch from {flopdispatch.__file__}")'
exec "$venv/bin/python" -m pytest "$@"
