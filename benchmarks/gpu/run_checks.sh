#!/usr/bin/env bash
# The GPU checks of issue 6 as one prepared run (about 6-8 minutes on one H200, start-up excluded).
#
#   bash benchmarks/gpu/run_checks.sh [OUT_DIR]      # OUT_DIR defaults to $OUT, else ./gpu-results
#
# Writes OUT_DIR/env.txt (GPU, driver, torch), OUT_DIR/cuda_smoke.jsonl (CUDA code paths of the
# trainer), OUT_DIR/throughput.jsonl (paper config, synthetic and cache sources, eager then
# compiled), OUT_DIR/profile.txt (where a step's time goes) and OUT_DIR/log.txt. The limits add up
# to 570 s, inside one 600 s device call. Each step has its own time limit, so one that hangs cannot use up
# the machine; the script goes on to the next step and exits non-zero if any failed.
# Needs only python3 with torch, torchvision, numpy and safetensors (no pip install, no network).
# DRY_RUN=1 runs the same steps on the CPU with tiny settings in under a minute (a test does this), to
# check the script itself before spending device time on it.
set -u
out="${1:-${OUT:-gpu-results}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
status=0

step() {  # step SECONDS NAME COMMAND...
    local limit="$1" name="$2"
    shift 2
    echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$out/log.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/log.txt"
    local rc="${PIPESTATUS[0]}"
    echo "=== $name: exit $rc" | tee -a "$out/log.txt"
    [ "$rc" = 0 ] || status=1
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    "$py" -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
    nproc
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

if [ "${DRY_RUN:-0}" = 1 ]; then
    step 120 cuda-smoke "$py" benchmarks/gpu/cuda_smoke.py --cpu-dry-run --out "$out/cuda_smoke.jsonl"
    step 120 throughput-eager "$py" benchmarks/gpu/pretrain_throughput.py --tiny --device cpu --steps 2 \
        --warmup 1 --batch-size 4 --out "$out/throughput.jsonl"
    step 60 profile "$py" benchmarks/gpu/profile_step.py --tiny --device cpu --steps 2 --out "$out/profile.txt"
else
    # the acceptance number first; then the CUDA paths, the profile, and compilation (the slowest to start)
    step 120 throughput-eager "$py" benchmarks/gpu/pretrain_throughput.py --workers 12 --out "$out/throughput.jsonl"
    step 180 cuda-smoke "$py" benchmarks/gpu/cuda_smoke.py --out "$out/cuda_smoke.jsonl"
    step 90 profile "$py" benchmarks/gpu/profile_step.py --out "$out/profile.txt"
    step 180 throughput-compile "$py" benchmarks/gpu/pretrain_throughput.py --source synthetic --compile \
        --out "$out/throughput.jsonl"
fi

echo "=== summary" | tee -a "$out/log.txt"
"$py" - "$out/throughput.jsonl" <<'EOF' 2>&1 | tee -a "$out/log.txt"
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1])]
except FileNotFoundError:
    rows = []
for r in rows:
    print(f"{r['source']:9} compile={r['compile']!s:5} batch={r['batch_size']} {r['images_per_s']:8.1f} img/s "
          f"peak {r['peak_memory_gib'] or 0:.1f} GiB  target {r['target_images_per_s']}: {r['meets_target']}")
EOF
exit "$status"
