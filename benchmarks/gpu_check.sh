#!/usr/bin/env bash
# The GPU check: one command on one NVIDIA H100 / H200 (under 10 minutes) that measures what no CPU run can.
#
#     bash benchmarks/gpu_check.sh              # on the GPU machine
#     bash benchmarks/gpu_check.sh --dry-run    # anywhere, on the CPU: tiny shapes, the same steps (~1 minute)
#
# It runs, in order:
#   (a) the tests marked `cuda` (tests/**/test_*_cuda.py): fp16 ViT under autocast, bf16 LLM, fp16 with the
#       loss scaler, FSDP2 on one rank with mixed precision, batched generation, a GPU checkpoint loaded on CPU;
#   (b) benchmarks/train_speed.py on 7b-shape in bf16, realistic workload, batch 4 and 16, with and without
#       cached features, and packed (run.packing, from cached features): samples/s, tokens/s, FLOP/s as a
#       share of the bf16 matmul rate it measures there (MFU), CUDA peak memory;
#   (c) the real recipe (7b-recipe: the 7B shapes with random weights, LLM in bf16, only llm_proj trains)
#       at batch 1: its CUDA peak memory, and whether that is under 22 GB (a 24 GB card);
#   (d) the time of one epoch of the recipe's 18.8k samples at the rates measured in (b).
# The log goes to stdout and to $GPU_CHECK_LOG (default /tmp/gpu_check.log).
#
# The machine to plan for has Python 3.12, torch, transformers, peft, tiktoken, tensorboard and matplotlib,
# but no omegaconf and no network. What else the project imports comes as wheels in benchmarks/wheels/
# (git-ignored; about 37 MiB, within the 64 MiB that may travel with the source tree). Fill it once, on a
# machine with network access, from the repository root:
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         -d benchmarks/wheels omegaconf==2.4.0 antlr4-python3-runtime==4.13.2 av==18.1.0 \
#         pytest==9.0.3 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.20.0
#
# Only the modules missing on the machine are installed, from those wheels, into /tmp/gpu_check_site.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
case "${1:-}" in
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
LOG=${GPU_CHECK_LOG:-/tmp/gpu_check.log}
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1
START=$SECONDS

missing=$(python3 -c '
import importlib
def importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False
print(" ".join(m for m in ("omegaconf", "antlr4", "av", "pytest", "pluggy", "iniconfig", "pygments") if not importable(m)))')
if [ -n "$missing" ]; then
    if ! ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
        echo "missing modules: $missing; and benchmarks/wheels/ holds no wheels (see this script's header)" >&2
        exit 1
    fi
    echo "== installing from benchmarks/wheels/ (missing: $missing)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site benchmarks/wheels/*.whl
    export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi

if [ "$DRY_RUN" = 1 ]; then
    # on the CPU: the cuda tests run there (GPU_CHECK_DRY_RUN=1), the benchmarks on `small`, 1 step, in
    # fp32 (a CPU without bf16 matrix instructions, AVX2 only, spends minutes on one bf16 step of `small`)
    export GPU_CHECK_DRY_RUN=1 OMP_NUM_THREADS=1
    AMP=none
    SPEED=(--configs small --device cpu --threads 1 --steps 1 --batch 1 2 --in-process)
    RECIPE=(--configs small --device cpu --threads 1 --steps 1 --batch 1 --in-process)
else
    python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU: use --dry-run"; print(torch.cuda.get_device_name())'
    AMP=bf16
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    # rows in this process: CUDA's peak is reset for each row, and 7 fresh processes would spend
    # minutes starting up
    SPEED=(--configs 7b-shape --device cuda --steps 10 --batch 4 16 --in-process)
    RECIPE=(--configs 7b-recipe --device cuda --steps 5 --in-process)
fi
python3 -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)'

echo "== (a) tests marked cuda"
mapfile -t CUDA_TESTS < <(find tests -name 'test_*_cuda.py' | sort)
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -o addopts="" -p no:cacheprovider -q -ra -m cuda "${CUDA_TESTS[@]}"

echo "== (b) training speed, bf16, realistic workload (ours, the original's way, ours from cached features, packed)"
python3 benchmarks/train_speed.py "${SPEED[@]}" --workload realistic --amp "$AMP" --cached-features --packing --epoch 18800 \
    | tee /tmp/gpu_check_speed.txt

echo "== (c) the real recipe at batch 1: peak memory"
python3 benchmarks/train_speed.py "${RECIPE[@]}" --workload realistic --amp "$AMP" | tee /tmp/gpu_check_recipe.txt
peak=$(grep -m1 -E '^ +ours ' /tmp/gpu_check_recipe.txt | grep -oE '[0-9.]+ GiB' | grep -oE '[0-9.]+')
python3 -c "
peak = float('$peak')
print(f'real recipe, batch 1: peak {peak:.2f} GiB = {peak * 2**30 / 1e9:.1f} GB:',
      'under 22 GB (fits a 24 GB card)' if peak * 2**30 < 22e9 else 'NOT under 22 GB')"

echo "== (d) one epoch of the 18.8k samples at the measured rates"
grep -E "^== |^ +(ours|original|cached|cached\+packed) .*samples/s" /tmp/gpu_check_speed.txt \
    | sed -E 's/^ +([a-z+]+) +([0-9.]+ samples\/s).*(epoch of .*)$/   \1: \2, \3/'
echo "gpu_check done in $((SECONDS - START)) s (dry run: $DRY_RUN)"
