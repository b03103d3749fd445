#!/usr/bin/env bash
# OGBench's evaluation protocol for several agents and seeds side by side on one machine (meant for a GPU box):
# 1M updates each, evaluation (5 tasks x 50 episodes) every 50k updates, so the published "mean of the evaluations
# at 800k, 900k and 1M" and the 50k / 100k / 200k points both come out of one run.
#
#   scripts/ogbench_protocol.sh start RUNS DATA_DIR ENV AGENT:SEED...   # launch, detached; returns at once
#   scripts/ogbench_protocol.sh report RUNS                             # one line per run: last eval, rate
#
# Environment: CRL (default: python -m crl.cli), STEPS (1000000), EVAL_EVERY (50000), EVAL_WORKERS (3 per run),
# MEM_FRACTION (GPU memory share per run, default 0.9/number of runs), EXTRA (more `crl train` flags).
# Each run writes RUNS/ENV_AGENT_sSEED/ and RUNS/ENV_AGENT_sSEED.log; `crl train --resume DIR` continues one that
# was stopped. Example (two CRL seeds on a GPU): EXTRA='--updates-per-call 250' scripts/ogbench_protocol.sh start \
#   runs /data pointmaze-medium-navigate-v0 crl:0 crl:1
set -euo pipefail
CRL=${CRL:-"python3 -m crl.cli"}
cmd=${1:?usage: $0 start RUNS DATA_DIR ENV AGENT:SEED... | report RUNS}
case "$cmd" in
start)
    runs=${2:?RUNS}; data=${3:?DATA_DIR}; env=${4:?ENV}; shift 4
    [ $# -ge 1 ] || { echo "error: name at least one AGENT:SEED" >&2; exit 2; }
    mkdir -p "$runs"
    frac=${MEM_FRACTION:-$(python3 -c "print(round(0.9 / $#, 3))")}
    for spec in "$@"; do
        agent=${spec%%:*}; seed=${spec##*:}
        name="${env}_${agent}_s${seed}"
        XLA_PYTHON_CLIENT_MEM_FRACTION=$frac PYTHONUNBUFFERED=1 setsid nohup $CRL train --env "$env" \
            --agent "$agent" --seed "$seed" --steps "${STEPS:-1000000}" --eval-every "${EVAL_EVERY:-50000}" \
            --eval-workers "${EVAL_WORKERS:-3}" --data-dir "$data" --run-dir "$runs/$name" ${EXTRA:-} \
            >"$runs/$name.log" 2>&1 </dev/null &
        echo "started $name (pid $!, GPU memory fraction $frac)"
    done
    ;;
report)
    runs=${2:?RUNS}
    for d in "$runs"/*/; do
        d=${d%/}; name=$(basename "$d")
        last=$(tail -n 1 "$d/eval.csv" 2>/dev/null | cut -d, -f2,3,11 || true)
        done_=$([ -f "$d/summary.json" ] && echo finished || echo running)
        prog=$(tr '\r' '\n' <"$d.log" 2>/dev/null | grep -a 'upd/s' | tail -n 1 | cut -c1-110 || true)
        echo "$name $done_ last_eval(updates,success,wall_s)=${last:-none} | ${prog}"
    done
    ;;
*) echo "error: unknown command $cmd (start | report)" >&2; exit 2 ;;
esac
