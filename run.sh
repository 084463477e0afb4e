#!/usr/bin/env bash
# One-command set-up and run. Creates .venv in the checkout, installs metarl into it, then:
#   bash run.sh demo   a short MAML run on sinusoid regression (about a minute on 2 CPU cores)
#   bash run.sh test   the whole test suite
# Needs only Python >= 3.10 (set PYTHON=/path/to/python to choose one).
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-}"
case "$job" in
  demo | test) ;;
  *) echo "usage: bash run.sh demo|test" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
py=.venv/bin/python
"$py" -m pip install --quiet --upgrade pip
# A CPU build of torch is enough for everything here; where pip can find 2.13.0 locally it takes
# seconds, while an unpinned torch would pull a multi-GB CUDA build. Elsewhere pip picks a build
# that satisfies the project's own range (torch>=2.2).
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install --quiet "torch==2.13.0" 2>/dev/null || echo "run.sh: torch 2.13.0 not available here; installing the project's torch range instead"
fi
if [ "$job" = test ]; then
  "$py" -m pip install --quiet ".[test]"
  # Two workers (pytest-xdist): the suite is about 9 minutes of CPU, so one per core keeps it under 10
  # minutes on a 2-core machine. PYTEST_WORKERS=0 runs it in one process. Each worker's torch gets its
  # share of the cores, so that two OpenMP teams never spin against each other on the same core.
  workers="${PYTEST_WORKERS:-2}"
  cores_per_worker=$(( $(nproc) / (workers > 1 ? workers : 1) ))
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( cores_per_worker > 0 ? cores_per_worker : 1 ))}"
  exec "$py" -m pytest -n "$workers" "${@:2}"
fi
"$py" -m pip install --quiet .
exec "$py" scripts/train_sinusoid.py --out "runs/quickstart-$(date +%Y%m%d-%H%M%S)" --iterations 15000 --eval-every 2500 \
  --checkpoint-every 2500 --final-eval-tasks 600 "${@:2}"
