#!/usr/bin/env bash
# The wheel installs and runs on a machine with no compiler. Builds the sdist and the wheel
# (python -m build: the wheel is built from the sdist, so a file missing from the sdist fails
# here), checks that the compiled core links no libtorch (one wheel per Python version serves
# every torch), then installs the wheel, binaries only, into a fresh venv where every compiler
# name on PATH is /bin/false, and runs `flopdispatch demo` from outside the checkout.
# Needs: the current python with pip (and a compiler, for the build step only). About 2-3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m pip install -q build
python -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/flopdispatch-*.whl)
ls "$tmp"/dist/flopdispatch-*.tar.gz >/dev/null
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
python -m zipfile -e "$wheel" "$tmp/unpacked"
links=$(ldd "$tmp"/unpacked/flopdispatch/_C*.so)
if grep -Eq 'libtorch|libc10|libpython' <<<"$links"; then
  echo "the compiled core links torch or libpython:"; echo "$links"; exit 1
fi

# a fresh venv on a "machine" with no compiler
python -m venv "$tmp/venv"
mkdir "$tmp/nocc"
for c in cc c++ gcc g++ clang clang++ x86_64-linux-gnu-gcc x86_64-linux-gnu-g++ ld; do ln -s /bin/false "$tmp/nocc/$c"; done
export PATH="$tmp/nocc:$PATH" CC=/bin/false CXX=/bin/false
unset PYTHONPATH
if gcc --version >/dev/null 2>&1; then echo "a compiler is still reachable"; exit 1; fi
"$tmp/venv/bin/python" -m pip install -q torch==2.13.0
"$tmp/venv/bin/python" -m pip install -q --only-binary=:all: "$wheel"
cd "$tmp"
"$tmp/venv/bin/python" -c 'import flopdispatch, sys; p = flopdispatch.__file__; print("imported from", p); sys.exit(0 if p.startswith(sys.prefix) else 1)'
"$tmp/venv/bin/flopdispatch" demo --seq 128 | tee "$tmp/demo.txt"
grep -q "FLOPs per token" "$tmp/demo.txt"
echo "wheel check: ok"
