#!/usr/bin/env bash
# Sanitizer job: builds flopdispatch._C with AddressSanitizer and UndefinedBehaviorSanitizer into
# a temporary copy of the package (the normal in-place build is left alone) and runs the tests
# that exercise the core's memory and threading hazards under it. Any sanitizer report fails.
#
# Usage: .ci/sanitize.sh [pytest selection...]   (run inside the project's virtual environment)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python}
work=$(mktemp -d "${TMPDIR:-/tmp}/flopdispatch-asan.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A copy of the package, with the sanitized extension in place of the normal one.
cp -r flopdispatch "$work/flopdispatch"
rm -f "$work"/flopdispatch/_C*.so
cp -r tests "$work/tests"
cp -r examples "$work/examples"  # tests that import or run the examples (test_roots: gan.py)
cp README.md "$work/README.md"  # tests that run the README's examples
cp pyproject.toml "$work/pyproject.toml"  # the pytest markers (slow)
"$python" -c "import pybind11" 2>/dev/null || { echo "sanitize.sh needs pybind11 in this environment (pip install pybind11)" >&2; exit 2; }
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
includes=$("$python" -m pybind11 --includes)
cxx=${CXX:-g++}
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
objs=()
for src in csrc/*.cpp; do
  obj="$work/$(basename "${src%.cpp}").o"
  # one job per source, in parallel (about 30 s on 2 cores)
  $cxx -O1 -g -std=c++17 -fPIC -fvisibility=hidden $san $includes -c "$src" -o "$obj" &
  objs+=("$obj")
done
wait
$cxx -shared $san "${objs[@]}" -o "$work/flopdispatch/_C$suffix"

# libstdc++ is preloaded too: ASan intercepts __cxa_throw and must find the real one at start-up
# (python itself does not link libstdc++).
libasan="$($cxx -print-file-name=libasan.so) $(readlink -f "$($cxx -print-file-name=libstdc++.so)")"
log="$work/sanitizer"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:log_path=$log.asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$log.ubsan"
# The tests of the core's hazards: new ops first seen inside callbacks (the op table), threads,
# nested and out-of-order counts, Ctrl-C, big integers, exceptions and symbolic shapes; user
# formulas (op-table refresh), higher-order ops, nested tensors (decomposition), the new families,
# fd.symbolic (the recorder's per-count Python pricer), the tree cache (walk_tree, add_modules),
# several roots (alias_module), saved activations (where), the meter and collectives (comm hook);
# counts past 128 bits (the rows' spill), Ctrl-C at every line (Lifecycle install/removal), torch.compile.
selection=("$@")
if [ ${#selection[@]} -eq 0 ]; then
  selection=(tests/api/test_reliability.py
             tests/api/test_behaviour.py
             tests/api/test_phases.py
             tests/api/test_user_formulas.py
             tests/formulas/test_hops.py
             tests/api/test_nested.py
             tests/formulas/test_fft_linalg_families.py
             tests/api/test_symbolic.py
             tests/api/test_block_cost.py
             tests/api/test_roots.py
             tests/api/test_activations.py
             tests/api/test_meter.py
             tests/distributed/test_distributed.py
             tests/api/test_exact_ints.py
             tests/api/test_interrupts.py
             tests/api/test_compile.py)
fi
status=0
(cd "$work" && PYTHONPATH="$work" LD_PRELOAD="$libasan" \
   "$python" -m pytest -q -p no:cacheprovider --capture=sys -x "${selection[@]}") || status=$?
reports=$(cat "$log".asan.* "$log".ubsan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  echo "sanitizer reports:" >&2
  echo "$reports" >&2
  exit 1
fi
if [ "$status" -eq 86 ] || [ "$status" -eq 87 ]; then
  # --capture=sys leaves file descriptor 2 alone: a report not in a log file is printed above
  echo "sanitizer job: $([ "$status" -eq 86 ] && echo AddressSanitizer || echo UndefinedBehaviorSanitizer) report (exit $status)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitizer job: tests failed (exit $status)" >&2
  exit "$status"
fi
echo "sanitizer job: clean"
