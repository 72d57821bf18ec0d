#!/usr/bin/env bash
# `make bench`: every benchmark table under docs/, regenerated on this machine.
set -euo pipefail
SHARED=${1:-../shared}
PY=.venv/bin/python
cd "$(dirname "$0")/.."
if [ -f "$SHARED/peers/setup.sh" ]; then
  bash "$SHARED/peers/setup.sh" || echo "peers environment could not be built; benchmarking our models only"
fi
$PY scripts/bench_models.py --shared "$SHARED" --out docs/benchmarks.md
$PY scripts/bench_identify.py --shared "$SHARED"
if [ -f scripts/bench_search.py ]; then $PY scripts/bench_search.py; fi
if [ -f scripts/loadtest.py ]; then $PY scripts/loadtest.py --data "$SHARED/data"; fi
if [ -f scripts/soak.py ]; then $PY scripts/soak.py --data "$SHARED/data"; fi
$PY scripts/bench_audio.py --cli --shared "$SHARED"
$PY scripts/bench_extract.py --shared "$SHARED" --device auto
$PY scripts/bench_store.py --shared "$SHARED"
echo "benchmarks written under docs/"
