#!/usr/bin/env bash
# Back from a GPU window (scripts/gpu_window.sh): unpack what it wrote into this checkout, remove what it removed
# (a finished run's carried state, a finished teacher's resume.pt), and show what to commit.
#
#   bash scripts/unpack_window.sh FILES_AT     (the folder the device call's files were copied to)
set -euo pipefail
from=${1:?usage: unpack_window.sh FILES_AT}
ls "$from"/window.tar.part* > /dev/null || { echo "error: unpack_window: no window.tar.part* in $from"; exit 2; }
cat "$from"/window.tar.part* | tar -xf -
# the folders the window watched (paper campaign: teachers/paper results/paper; PW_RUNS: paper_width/cpu teachers/cpu)
watched=$(cat "$from/watched.txt" 2>/dev/null || echo "teachers/paper results/paper")
if [ -f "$from/present.txt" ]; then
    find $watched -type f 2>/dev/null | sort > /tmp/unpack_local.txt
    sort "$from/present.txt" | comm -23 /tmp/unpack_local.txt - | while read -r f; do rm -v -- "$f"; done
fi
git status --short $watched bench/results
