#!/usr/bin/env bash
# One prepared GPU check: install from the lock, run frozen, contrastive-gpu, lora-gpu, heal-gpu and lbr-gpu
# on cyber's full profile on one CUDA GPU, check that CUDA was really used, and write a BENCHMARKS.md-ready
# table (wall time, tokens/s, model FLOP/s and MFU, peak GPU memory, scores; formulas in benchmarks/gpu_table.py).
#
#   bash scripts/gpu_check.sh [--out DIR] [--steps N] [--skip-install]     # on a GPU machine, ~8 min
#   bash scripts/gpu_check.sh --dry-run --task-dir DIR --model DIR --llm DIR [--out DIR]   # CPU, tiny
#
# Budget: the committed *-gpu configs train 800 (lbr: 1000 + 1000) steps; the check cuts every training
# stage to --steps (default 200) with one dev evaluation at the end, through configs written to
# $OUT/baselines (each changed line ends in `# gpu_check`). Its scores are therefore not the leaderboard's.
# --dry-run runs the same pipeline on the CPU with 2 steps on the given tiny task and models, and skips
# the CUDA assertion. The table goes to $OUT/gpu_check.md (OUT: --out, else $OUT, else ./gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=${OUT:-gpu-check} steps=200 dry_run=0 install=1 task_args=(--task cyber --profile full) model="" llm=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --dry-run) dry_run=1; install=0; shift ;;
    --skip-install) install=0; shift ;;
    --task-dir) task_args=(--task-dir "$2"); shift 2 ;;
    --model) model=$2; shift 2 ;;
    --llm) llm=$2; shift 2 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
methods=frozen,contrastive-gpu,lora-gpu,heal-gpu,lbr-gpu
if [ "$dry_run" = 1 ]; then
  [ -n "$model" ] && [ -n "$llm" ] && [ "${task_args[0]}" = --task-dir ] \
    || { echo "gpu_check: --dry-run needs --task-dir, --model (sentence-transformers) and --llm (causal LM)" >&2; exit 2; }
  steps=2 device=cpu table_args=()
  "$PYTHON" benchmarks/gpu_table.py configs "$out/baselines" --steps "$steps" --dry-run --model "$model" --llm "$llm" >/dev/null
else
  command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: this check needs a CUDA GPU (or --dry-run)" >&2; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  if [ "$install" = 1 ]; then bash scripts/install.sh; fi  # torch==2.13.0 (CUDA build where nvidia-smi exists), then the lock
  "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: torch " + torch.__version__ + " sees no CUDA device")'
  device=cuda table_args=(--require-cuda --peak-tflops "${PEAK_TFLOPS:-989}")  # H200/H100 SXM dense bf16
  "$PYTHON" benchmarks/gpu_table.py configs "$out/baselines" --steps "$steps" >/dev/null
fi
export HARNESS_RUNS_DIR=${HARNESS_RUNS_DIR:-$out/runs}
start=$(date +%s)
"$PYTHON" -m harness run "${task_args[@]}" --methods "$methods" --baselines-dir "$out/baselines" --device "$device" \
  --seeds 0 --out "$out/results" --no-progress --overwrite 2>&1 | tee "$out/run.log"
echo "gpu_check: all runs took $(( $(date +%s) - start )) s" | tee -a "$out/run.log"
"$PYTHON" benchmarks/gpu_table.py table "$out/results" --expect 5 "${table_args[@]}" >"$out/gpu_check.md"
cat "$out/gpu_check.md"
