#!/usr/bin/env bash
# The GPU run of hmexperts in one script, from the repository root:
#
#   1. the device's name and the machine (nvidia-smi, CuPy, CPU, memory);
#   2. the GPU tests: pytest -ra -m gpu tests/test_gpu.py;
#   3. the CPU path (device="cpu", one BLAS thread) at n = 1e6, 16 leaves,
#      32 features, float32: the speed-up's reference;
#   4. bench_em.py --part scaling --device cuda, the same tree and features,
#      float32 then float64, at n = 1e5, 1e6, 1e7 (the three decades up to
#      --max-n), and the GPU's speed-up over the CPU path (target: 30x).
#
# Everything is printed and written to benchmarks/results/gpu_<device>.txt
# (--out DIR to write it elsewhere). A step that fails does not stop the
# others: each one's exit status is recorded, the summary lists them, and the
# script exits 1 if any failed.
#
#   bash benchmarks/gpu_check.sh                  # on a machine with a GPU
#   bash benchmarks/gpu_check.sh --device cpu     # dry run on the host
#
# --device cpu is a dry run: the same steps at small sizes (n up to 1e5),
# the "device" runs on the CPU (bench_em.py --device cpu), the GPU tests
# skipped with their reasons. It checks the script, not the GPU; its output
# goes to benchmarks/results/gpu_check_cpu_dryrun.txt.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash benchmarks/gpu_check.sh [--device cuda|cpu] [--python PATH]
                                    [--max-n N] [--iters K] [--out DIR]
                                    [--step-timeout SECONDS]

  --device        cuda (default): the GPU run; cpu: a dry run on the host
                  at small sizes (no GPU figure is measured)
  --python        the interpreter (default .venv/bin/python if present,
                  else python3)
  --max-n         the largest n of the device runs, which take the three
                  decades up to it (default 1e7 on cuda, 1e5 on cpu); the
                  speed-up is measured at min(1e6, max-n)
  --iters         EM iterations timed per configuration (default 3)
  --out           folder of the output file (default benchmarks/results)
  --step-timeout  stop a step after this many seconds (default: none)
EOF
}

DEVICE=cuda
PYTHON=
MAX_N=
ITERS=3
OUT_DIR=benchmarks/results
STEP_TIMEOUT=
while [[ $# -gt 0 ]]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --max-n) MAX_N=$2; shift 2 ;;
        --iters) ITERS=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case $DEVICE in
    cuda | cpu) ;;
    *) echo "gpu_check.sh: --device must be cuda or cpu, not $DEVICE" >&2; exit 2 ;;
esac
if [[ ! -f benchmarks/bench_em.py ]]; then
    echo "gpu_check.sh: run it from the repository root" >&2
    exit 2
fi
if [[ -z $PYTHON ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# hmexperts from this checkout where the interpreter has none installed (a
# GPU machine's own Python); then a missing dependency stops the script here
# with its name, not in every step. The checks leave out the current folder,
# which `python -c` puts first but the benchmarks' scripts do not.
IMPORT='import sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]; import hmexperts'
if ! "$PYTHON" -c "$IMPORT" 2>/dev/null; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PYTHON" -c "$IMPORT"; then
    echo "gpu_check.sh: $PYTHON cannot import hmexperts (the error is above):" \
        "install its dependencies (pip install -e \".[gpu]\")" >&2
    exit 2
fi
if [[ -z $MAX_N ]]; then
    if [[ $DEVICE == cuda ]]; then MAX_N=1e7; else MAX_N=1e5; fi
fi
# "1e7" -> 10000000; the runs' n: the three decades up to max-n, from 1000
MAX_N=$(awk -v x="$MAX_N" 'BEGIN { printf "%d", x }')
if ((MAX_N < 1000)); then
    echo "gpu_check.sh: --max-n must be at least 1000" >&2
    exit 2
fi
N_LIST=()
for n in $((MAX_N / 100)) $((MAX_N / 10)) "$MAX_N"; do
    ((n >= 1000)) && N_LIST+=("$n")
done
RATIO_N=$((MAX_N < 1000000 ? MAX_N : 1000000))
LEAVES=16
FEATURES=32
ONE_THREAD=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1)

# ---------------------------------------------------------------------------
# The device's name, for the header and the output file's name

device_name() {
    if [[ $DEVICE == cpu ]]; then
        local model
        model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
        echo "cpu-${model:-unknown} ($(hostname 2>/dev/null || echo ?))"
        return
    fi
    local name=
    if command -v nvidia-smi >/dev/null 2>&1; then
        name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null |
            head -n 1) || name=
    fi
    if [[ -z $name ]]; then
        name=$("$PYTHON" -c '
import cupy
name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
print(name.decode() if isinstance(name, bytes) else name)' 2>/dev/null) || name=
    fi
    echo "${name:-unknown-gpu}"
}

DEVICE_NAME=$(device_name)
if [[ $DEVICE == cpu ]]; then
    OUT_FILE=$OUT_DIR/gpu_check_cpu_dryrun.txt
else
    SAFE=$(echo "$DEVICE_NAME" | tr '[:upper:]' '[:lower:]' |
        sed -e 's/[^a-z0-9]\{1,\}/_/g' -e 's/^_//' -e 's/_$//')
    OUT_FILE=$OUT_DIR/gpu_${SAFE:-unknown}.txt
fi
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------------------
# Steps: each one's output is printed and kept in $WORK/<name>.out, its exit
# status in STEP_RC

STEP_NAMES=()
STEP_RC=()
STEP_SECONDS=()

run_step() {
    local name=$1
    shift
    local cmd=("$@")
    if [[ -n $STEP_TIMEOUT ]]; then cmd=(timeout "$STEP_TIMEOUT" "${cmd[@]}"); fi
    echo
    echo "=== $name"
    echo "\$ ${cmd[*]}"
    local start=$SECONDS rc
    set +e
    "${cmd[@]}" 2>&1 | tee "$WORK/$name.out"
    rc=${PIPESTATUS[0]}
    set -e
    STEP_NAMES+=("$name")
    STEP_RC+=("$rc")
    STEP_SECONDS+=($((SECONDS - start)))
    echo "=== $name: exit status $rc, $((SECONDS - start)) s"
}

# Mark the last step failed (status 1) with a reason, after the fact.
fail_last_step() {
    echo "=== ${STEP_NAMES[-1]}: FAILED: $1"
    STEP_RC[-1]=1
}

# s/iter of the row (n, leaves, features) of a bench_em.py scaling table
s_per_iter() {
    awk -v n="$2" -v l="$LEAVES" -v f="$FEATURES" \
        '$1 == n && $2 == l && $3 == f && $4 ~ /^[0-9.]+$/ { print $4; exit }' \
        "$WORK/$1.out"
}

main() {
    echo "# benchmarks/gpu_check.sh --device $DEVICE --max-n $MAX_N --iters $ITERS"
    if [[ $DEVICE == cpu ]]; then
        echo "#"
        echo "# DRY RUN on the host CPU (--device cpu): the GPU check's steps at"
        echo "# small sizes, to test the script. No GPU figure is measured here:"
        echo "# the 'device' runs are bench_em.py --device cpu, the GPU tests are"
        echo "# skipped (expected: there is no GPU), and the speed-up compares the"
        echo "# CPU with itself."
    fi
    echo "#"
    echo "# date    : $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    local commit
    commit=$(git rev-parse --short HEAD 2>/dev/null) || commit=unknown
    if [[ $commit != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
        commit="$commit (with uncommitted changes to tracked files)"
    fi
    echo "# commit  : $commit"
    echo "# device  : $DEVICE_NAME"
    echo "# host    : $(uname -srm), $(nproc 2>/dev/null || echo ?) cpus," \
        "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 2^20 }' /proc/meminfo 2>/dev/null)"
    echo "# cpu     : $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
    echo "# python  : $PYTHON ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
    echo "# output  : $OUT_FILE"

    if [[ $DEVICE == cuda ]]; then
        if command -v nvidia-smi >/dev/null 2>&1; then
            run_step nvidia-smi nvidia-smi
        else
            echo
            echo "(nvidia-smi not found)"
        fi
        run_step cupy "$PYTHON" -c '
import cupy
print("cupy", cupy.__version__)
runtime = cupy.cuda.runtime
print("CUDA runtime", runtime.runtimeGetVersion(), "driver", runtime.driverGetVersion())
props = runtime.getDeviceProperties(0)
name = props["name"]
name = name.decode() if isinstance(name, bytes) else name
print("device 0:", name, round(props["totalGlobalMem"] / 2**30, 1), "GiB")'
    fi

    # GPU tests: on a GPU at least one must pass; on the host all are skipped
    run_step pytest-gpu "$PYTHON" -m pytest -ra -m gpu tests/test_gpu.py
    if [[ $DEVICE == cuda ]]; then
        if [[ ${STEP_RC[-1]} == 0 ]] && ! grep -Eq '[0-9]+ passed' "$WORK/pytest-gpu.out"; then
            fail_last_step "no GPU test passed (all skipped: see the reasons above)"
        fi
    else
        echo "(dry run: every GPU test is skipped on the host, with its reason" \
            "printed above; that is expected)"
    fi

    # The CPU path, one BLAS thread, at the speed-up's n: before the device
    # runs, so that a device run stopped at its time limit (the first H200
    # run's n = 1e7) does not take the reference with it
    run_step bench-cpu-reference-float32 "${ONE_THREAD[@]}" "$PYTHON" benchmarks/bench_em.py \
        --part scaling --device cpu --dtype float32 --iters "$ITERS" \
        --n "$RATIO_N" --leaves "$LEAVES" --features "$FEATURES"

    # bench_em.py on the device, float32 and float64 (in the dry run under
    # one BLAS thread too: a shared host's threads make it slow and noisy)
    local dtype device_env=(env)
    if [[ $DEVICE == cpu ]]; then device_env=("${ONE_THREAD[@]}"); fi
    for dtype in float32 float64; do
        run_step "bench-$DEVICE-$dtype" "${device_env[@]}" "$PYTHON" benchmarks/bench_em.py \
            --part scaling --device "$DEVICE" --dtype "$dtype" --iters "$ITERS" \
            --n "${N_LIST[@]}" --leaves "$LEAVES" --features "$FEATURES"
    done

    echo
    echo "=== speed-up over the CPU path (n=$RATIO_N, $LEAVES leaves," \
        "$FEATURES features, float32, s/iter)"
    local dev cpu
    dev=$(s_per_iter "bench-$DEVICE-float32" "$RATIO_N" || true)
    cpu=$(s_per_iter bench-cpu-reference-float32 "$RATIO_N" || true)
    if [[ -n $dev && -n $cpu ]]; then
        awk -v d="$dev" -v c="$cpu" -v dev="$DEVICE" 'BEGIN {
            r = c / d
            printf "device=%s %.4f s/iter, CPU (1 BLAS thread) %.4f s/iter: %.1fx", dev, d, c, r
            if (dev == "cuda") printf " (target 30x: %s)\n", (r >= 30 ? "met" : "NOT met")
            else printf " (dry run: the CPU against itself, not a GPU figure)\n"
        }'
    else
        echo "not available: no s/iter row for n=$RATIO_N in" \
            "bench-$DEVICE-float32 (${dev:-missing}) or the CPU reference (${cpu:-missing})"
    fi

    echo
    echo "=== summary"
    local i failed=0
    for i in "${!STEP_NAMES[@]}"; do
        printf '%-32s exit %3s  %5s s\n' "${STEP_NAMES[$i]}" "${STEP_RC[$i]}" \
            "${STEP_SECONDS[$i]}"
        [[ ${STEP_RC[$i]} == 0 ]] || failed=1
    done
    echo "total ${SECONDS} s"
    echo "(written to $OUT_FILE)"
    if ((failed)); then
        echo "FAILED: see the steps with a non-zero exit status above"
        return 1
    fi
    echo "all steps passed"
}

# The summary's status is the script's (pipefail); main runs under set -e.
main 2>&1 | tee "$OUT_FILE"
