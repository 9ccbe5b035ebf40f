#!/bin/sh
# The core-runtime benchmarks (docs/performance.md, "Core runtime"), with the
# exact settings the recorded numbers used. Results go to $OUT (default
# perf/results/); each script prints its baseline ratios at the end.
# Run as: PYTHON=/path/to/venv/bin/python perf/run_core.sh
# Needs: pip install -e '.[perf]' (pyperf, doit), make and xargs on PATH.
set -eu
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
OUT=${OUT:-results}
mkdir -p "$OUT"
rm -f "$OUT"/throughput.json "$OUT"/parallelism.json "$OUT"/inprocess.json \
    "$OUT"/persister.json "$OUT"/startup.json "$OUT"/memory.json
"$PY" bench_throughput.py --tasks 1000 5000 -o "$OUT/throughput.json"
"$PY" bench_parallelism.py -o "$OUT/parallelism.json"
"$PY" bench_inprocess.py --tasks 100000 -o "$OUT/inprocess.json"
"$PY" bench_persister.py --events 100000 -o "$OUT/persister.json"
"$PY" bench_startup.py -o "$OUT/startup.json"
"$PY" bench_memory.py --tasks 100000 -o "$OUT/memory.json"
