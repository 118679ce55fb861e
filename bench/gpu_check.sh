#!/usr/bin/env bash
# One GPU check (issue 11): the GPU-marked tests, `robustnb reproduce all --scale smoke` on CUDA, and the attack and
# recipe benchmarks on CUDA, each timed, ending with one table. On a machine without a GPU it says so and runs the CPU
# parts (the same tests and the smoke reproduction on the CPU). Run from the repository root:  bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  device=cuda; python -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
else
  device=cpu; echo "No GPU here (torch.cuda.is_available() is False): running the CPU parts only."
fi
root=$(mktemp -d)
declare -a rows
step() {  # name, then the command; records status and seconds
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$root/$name.log" 2>&1; then status=ok; else status="FAILED (see $root/$name.log)"; fi
  rows+=("$(printf '%-34s %-8s %6ds  %s' "$name" "$device" $((SECONDS - t0)) "$status")")
  tail -3 "$root/$name.log"
}
step gpu-tests python -m pytest -q tests/test_devices.py
step reproduce-smoke robustnb reproduce all --scale smoke --device "$device" --root "$root/runs"
if [ "$device" = cuda ]; then
  step bench-attacks python bench/attacks.py --device cuda
  step bench-recipes python bench/recipes.py --device cuda
  step bench-recipes-bf16 python bench/recipes.py --device cuda --amp bf16
  step bench-gpu python bench/gpu.py --device cuda
else
  step bench-gpu-selfcheck python bench/gpu.py --device cpu --small
fi
echo
printf '%-34s %-8s %7s  %s\n' check device time status
printf '%s\n' "${rows[@]}"
