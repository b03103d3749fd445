#!/usr/bin/env bash
# Online CRL on the paper's point mazes: one run per (maze, variant, seed); prints one JSON summary line each.
# Usage: benchmarks/point_mazes.sh OUT_DIR STEPS "MAZE ..." [extra crl train flags...]
#   benchmarks/point_mazes.sh runs/mazes 200000 "point_FourRooms point_U"
#   benchmarks/point_mazes.sh runs/mazes_infonce 100000 "point_FourRooms" --crl.loss infonce_forward --crl.energy l2
set -euo pipefail
out=$1; steps=$2; mazes=$3; shift 3
crl=${CRL:-.venv/bin/crl}
for maze in $mazes; do
  dir="$out/${maze}_s${SEED:-0}"
  "$crl" train --env "$maze" --steps "$steps" --seed "${SEED:-0}" --run-dir "$dir" --no-progress "$@" >&2
  cat "$dir/summary.json" | tr -d '\n '; echo
done
