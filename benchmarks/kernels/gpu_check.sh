#!/usr/bin/env bash
# The whole GPU check in one command: the GPU test suite (pytest -m gpu), then the GPU benchmark,
# which writes benchmarks/results/kernels_attention_gpu.{json,md} and kernels_gpu_targets.{json,md}
# (the test log goes to benchmarks/results/kernels_gpu_tests.log). Bounded to about 8 minutes:
# the tests time out after TESTS_TIMEOUT_S, the benchmark stops measuring after --budget-s.
#
# Usage: bash benchmarks/kernels/gpu_check.sh [--smoke] [bench_attention_gpu.py options]
#   --smoke   run both on CPU in Triton's interpreter with tiny sizes (checks the command itself;
#             writes nothing under benchmarks/results/)
# Environment: PYTHON (default: python) with scprint-model[test,triton,bench] installed and a
# CUDA build of torch; TESTS_TIMEOUT_S (default 180) bounds the test suite.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python}"
smoke=0
for argument in "$@"; do
    [[ "$argument" == "--smoke" ]] && smoke=1
done
if [[ $smoke == 1 ]]; then
    # Both must be set before triton is first imported.
    export SCPRINT_GPU_SMOKE=1 TRITON_INTERPRET=1
    log=/dev/null
else
    mkdir -p "$ROOT/benchmarks/results"
    log="$ROOT/benchmarks/results/kernels_gpu_tests.log"
fi
export MPLBACKEND=Agg PYTHONHASHSEED=0

start=$SECONDS
echo "== GPU tests (pytest -m gpu) =="
(
    cd "$ROOT/packages/scprint-model" &&
        timeout "${TESTS_TIMEOUT_S:-180}" "$PYTHON" -m pytest -q -m gpu tests/gpu -p no:cacheprovider
) 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
echo "== GPU tests: exit $tests_status after $((SECONDS - start)) s =="

echo "== GPU benchmark =="
"$PYTHON" "$ROOT/benchmarks/kernels/bench_attention_gpu.py" "$@"
bench_status=$?
echo "== GPU benchmark: exit $bench_status; whole check $((SECONDS - start)) s =="

if [[ $tests_status != 0 || $bench_status != 0 ]]; then
    echo "GPU check FAILED (tests exit $tests_status, benchmark exit $bench_status)" >&2
    exit 1
fi
echo "GPU check passed"
