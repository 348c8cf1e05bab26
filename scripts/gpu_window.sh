#!/usr/bin/env bash
# One GPU window of the paper profile (docs/gpu.md, "Short windows"), run on the lent machine from the repository
# root, in one call:
#   1. data: device_data/ (a copy of ../shared/data, git-ignored, carried) prepared into data/, or data/ as is;
#   2. the speed bench once (bench/epoch_time.py; its JSON lines go to bench/results/epoch_time.jsonl);
#   3. the campaign for BUDGET minutes: it resumes from the committed teachers/paper/ and results/paper/carry/;
#   4. what this window wrote and must last (files of teachers/paper, results/paper and bench/results newer than
#      its start), tarred and split into parts of at most 15 MiB under $OUT: a device call returns at most 8 files
#      of 16 MiB, 64 MiB in all (the script says so and stops when a window wrote more).
# Back here: cat <files_at>/window.tar.part* | tar -xf -   then commit those three folders.
#
#   bash scripts/gpu_window.sh BUDGET_MINUTES [BENCH_STEPS (0: no bench)] [METHOD_EPOCHS (default: the recipe's)]
#   PW_RUNS=method-s1,method-s2 bash scripts/gpu_window.sh BUDGET_MINUTES 0
#       step 3 trains the committed paper-width runs instead (issue 23: `paper-width --runs PW_RUNS`, compiled on a
#       GPU, state and records in paper_width/<PW_PROFILE, default cpu>/), and step 4 returns those folders
#
# A check on the CPU first (tiny, writes only under build/): PROFILE=smoke OUT=build/window_check \
#   RECORD_TO=build/window_check/runs CARRY=build/window_check/carry NO_BENCH_RECORD=1 bash scripts/gpu_window.sh 1 5
set -euo pipefail
budget=${1:?usage: gpu_window.sh BUDGET_MINUTES [BENCH_STEPS] [METHOD_EPOCHS]}
bench_steps=${2:-300}
method_epochs=${3:-}
out=${OUT:-build/window}
profile=${PROFILE:-paper}
record_to=${RECORD_TO:-results/paper/runs}
carry=${CARRY:-results/paper/carry}
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$out"
start=$(mktemp) && touch "$start"  # files newer than this are what the window wrote

# What the campaign imports, checked first: a missing package is one line, before any GPU time is spent.
$PY - <<'EOF'
import importlib
missing = [m for m in ("torch", "torchvision", "numpy", "pandas", "tqdm") if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"error: gpu_window: missing packages {missing}; install them (pyproject.toml pins) first")
import torch
print(f"[window] torch {torch.__version__}, cuda available: {torch.cuda.is_available()}", flush=True)
EOF

if [ ! -f data/cifar-10-batches-py/batches.meta ]; then
    [ -f device_data/prepare_cifar10.py ] || { echo "error: gpu_window: no data/ and no device_data/ (copy ../shared/data there and carry it)"; exit 2; }
    $PY device_data/prepare_cifar10.py data/
fi

if [ "$bench_steps" != 0 ]; then
    # resnet56 compiled: the network and mode of the speed goals (about 2.5 min on an H100, compile included)
    mode=$($PY -c "import torch; print('reduce-overhead' if torch.cuda.is_available() else 'eager')")
    $PY bench/epoch_time.py --archs resnet56 --steps "$bench_steps" --warmup 3 --compile "$mode" \
        ${NO_BENCH_RECORD:+--no-record} 2>&1 | tee "$out/bench.log"
fi

compile=$($PY -c "import torch; print('reduce-overhead' if torch.cuda.is_available() else 'off')")
if [ -n "${PW_RUNS:-}" ]; then
    # The paper-width runs of issue 23 (ResNet-56 at width 1.0, paper_width/<profile>/), resumed from their
    # committed state and carried back the same way: the same command as on the CPU, on the GPU.
    watched="paper_width/${PW_PROFILE:-cpu} teachers/${PW_PROFILE:-cpu}"
    $PY -m paper_repro paper-width --runs "$PW_RUNS" --profile "${PW_PROFILE:-cpu}" --budget-minutes "$budget" \
        --compile "$compile" --no-download 2>&1 | tee "$out/paper_width.log"
    extra=""
else
    watched="teachers/paper results/paper"
    $PY -m paper_repro campaign --profile "$profile" --budget-minutes "$budget" --compile "$compile" --no-download \
        --record-to "$record_to" --carry "$carry" ${method_epochs:+--method-epochs "$method_epochs"} 2>&1 \
        | tee "$out/campaign.log"
    extra="$record_to $carry"
fi

mkdir -p $watched bench/results $extra
# Removed files (a finished run's carried state) are not in the tar: `git status` here shows them; a finished
# teacher's resume.pt likewise. Folders are listed so that a file's removal can be told from its absence.
echo "$watched" > "$out/watched.txt"
find $watched bench/results $extra -type f -newer "$start" 2>/dev/null | sort -u > "$out/written.txt"
find $watched -type f > "$out/present.txt"
bytes=$(cat "$out/written.txt" | xargs -r du -cb | tail -1 | cut -f1)
if [ "${bytes:-0}" -gt $((60 * 1024 * 1024)) ]; then
    echo "error: gpu_window: the window wrote ${bytes} bytes, more than one call can return (64 MiB)"; exit 2
fi
tar -cf - -T "$out/written.txt" | split -b 15M -d -a 1 - "$out/window.tar.part"
ls -l "$out"
