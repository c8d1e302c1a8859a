#!/usr/bin/env bash
# One call measures batchlab on a GPU: the GPU tests (pytest -m gpu) and the three benchmarks
# (timing paths, sweep throughput, Hessian-vector products), each bounded by `timeout`, in under
# 8 minutes on one GPU. Results: benchmarks/results/<benchmark>-<device-slug>.json (the slug is
# the GPU's model, e.g. nvidia-h200) and gpu-check-<device-slug>.json, a summary of every step;
# copied, with each step's log, into $OUT when that variable is set.
#
# Runs from a checkout with torch (with CUDA) installed for python3; installs nothing, needs no
# network. A step that fails (a missing package, a timeout) is recorded and the next one runs.
#
#   benchmarks/gpu_check.sh
#   BATCHLAB_GPU_CHECK_DRY=1 benchmarks/gpu_check.sh   # plumbing check on the CPU, tiny sizes,
#                                                     # results in a temporary folder
# Environment: PYTHON (default python3), BATCHLAB_GPU_CHECK_RESULTS (results folder).
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python3}"
DRY="${BATCHLAB_GPU_CHECK_DRY:-0}"
STARTED=$(date +%s)

if [[ "$DRY" == 1 ]]; then
    DEVICE=cpu
    RESULTS="${BATCHLAB_GPU_CHECK_RESULTS:-$(mktemp -d)}"
    # Seconds per step: tiny sizes, a loaded CPU.
    LIMIT_TESTS=120; LIMIT_TIMING=120; LIMIT_SWEEP=120; LIMIT_HVP=180
    TIMING_ARGS=(--batch-sizes 1 100 --n-examples 1000 --budget-s 0.05)
    SWEEP_ARGS=(--batch-sizes 16 --widths 32 --runs 2 --updates 40 --repeats 1 --min-seconds 0 --choice-seconds 0 --choice-min-repeats 0 --baseline-runs 2)
    HVP_ARGS=(--examples 300 --repeats 1 --skip-plain-eigen --peer-examples 300 --top-n 1)
else
    DEVICE=cuda
    RESULTS="${BATCHLAB_GPU_CHECK_RESULTS:-benchmarks/results}"
    # 80 + 140 + 150 + 90 s = 7 min 40 s at most. Sizes are meant to take well under each limit
    # on an H100/H200-class GPU, from ~1 ms per eager update at B = 1 and ~0.1 ms replayed:
    # timing, 15 points of ~2 s; sweep, (4 + 4 runs) × 1,000 eager updates and a 64-run pack,
    # twice, at two batch sizes; HVP, products on 5,000 examples in a few ms each.
    LIMIT_TESTS=80; LIMIT_TIMING=140; LIMIT_SWEEP=150; LIMIT_HVP=90
    TIMING_ARGS=(--budget-s 1)
    SWEEP_ARGS=(--batch-sizes 1 128 --updates 1000 --repeats 2 --min-seconds 0 --baseline-runs 4)
    HVP_ARGS=(--repeats 5 --peer-examples 1000 4000 --top-n 1 3)
fi
mkdir -p "$RESULTS"
LOGS="$(mktemp -d)"

# Preflight: the device, and which Python packages are here (nothing is installed).
if ! SLUG=$(cd benchmarks && "$PYTHON" -c "
import sys, torch
from common import device_slug
if '$DEVICE' == 'cuda' and not torch.cuda.is_available():
    sys.exit('no CUDA device visible to torch ' + torch.__version__)
print(device_slug(torch.device('$DEVICE')))
" 2>"$LOGS/preflight.log"); then
    echo "gpu_check: cannot start: $(tail -n 1 "$LOGS/preflight.log")" >&2
    exit 1
fi
MISSING=$("$PYTHON" -c "
import importlib.util
names = ['numpy', 'scipy', 'matplotlib', 'tqdm', 'mlxtend', 'threadpoolctl', 'pytest', 'pyhessian']
print(' '.join(n for n in names if importlib.util.find_spec(n) is None))
")
echo "gpu_check: device $DEVICE ($SLUG), results in $RESULTS${MISSING:+; not installed: $MISSING}"

STEPS=()
run_step() {  # name, seconds, result file ('' for none), command...
    local name=$1 limit=$2 result=$3
    shift 3
    local began rc
    began=$(date +%s)
    echo "gpu_check: $name (at most ${limit} s) ..."
    timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    STEPS+=("$name|$rc|$(( $(date +%s) - began ))|$limit|$result")
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "gpu_check: $name ran past ${limit} s and was stopped"
    elif [[ $rc -ne 0 ]]; then
        echo "gpu_check: $name failed (exit $rc): $(tail -n 1 "$LOGS/$name.log")"
    fi
}

GPU_TESTS=$(grep -l "pytest.mark.gpu" tests/*.py | tr '\n' ' ')
# shellcheck disable=SC2086  # one word per test file
run_step gpu-tests "$LIMIT_TESTS" "gpu-tests-$SLUG.xml" \
    "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu $GPU_TESTS --junitxml="$RESULTS/gpu-tests-$SLUG.xml"
run_step timing-paths "$LIMIT_TIMING" "timing-$SLUG.json" \
    "$PYTHON" benchmarks/timing_paths.py --device "$DEVICE" "${TIMING_ARGS[@]}" --out "$RESULTS/timing-$SLUG.json"
run_step sweep-throughput "$LIMIT_SWEEP" "sweep-throughput-$SLUG.json" \
    "$PYTHON" benchmarks/sweep_throughput.py --device "$DEVICE" "${SWEEP_ARGS[@]}" \
    --out "$RESULTS/sweep-throughput-$SLUG.json"
run_step hvp "$LIMIT_HVP" "hvp-$SLUG.json" \
    "$PYTHON" benchmarks/hvp.py --device "$DEVICE" "${HVP_ARGS[@]}" --out "$RESULTS/hvp-$SLUG.json"

# Summary: every step's outcome, the last lines of each log, and the headline numbers.
printf '%s\n' "${STEPS[@]}" | "$PYTHON" benchmarks/gpu_check_summary.py \
    --device "$DEVICE" --results "$RESULTS" --logs "$LOGS" --slug "$SLUG" --dry "$DRY" \
    --missing "$MISSING" --seconds "$(( $(date +%s) - STARTED ))"
SUMMARY_RC=$?

if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT/logs"
    cp "$RESULTS"/*"$SLUG"* "$OUT"/ 2>/dev/null
    cp "$LOGS"/*.log "$OUT/logs/" 2>/dev/null
    echo "gpu_check: copied results and logs to $OUT"
fi
exit "$SUMMARY_RC"
