#!/usr/bin/env bash
# The GPU checks, as one prepared command (budget: under
# 6 minutes on one H100/H200; not yet timed on one): run from anywhere,
#
#     bash benchmarks/gpu.sh                  # on a CUDA machine
#     bash benchmarks/gpu.sh --device cpu --smoke   # small sizes, to check it runs
#
# 1. the CUDA tests of the losses, the optimizers and the training loop (the
#    CUDA-graph step equals SparseAdam; `fit` graphs by default, resumes, and
#    matches its eager loop; GRU4Rec and NARM captured with --graph on; cce's
#    cut kernel against ce, after a best-effort install of cut-cross-entropy);
#    skipped without CUDA;
# 2. end to end (benchmarks/bench_train.py): one epoch of `srs train` on the
#    synthetic MeLi2020 preset at scale 1.0 (1.28M items, 4.68M samples) with
#    the recommended scalable loss (ns, L2, score scale 5, popularity
#    sampling, sparse_fast), STAMP then SR-GNN: seconds per epoch for
#    training and for evaluation, ms per step (targets <= 1.2 and <= 1.8 ms);
#    then a small run under torchrun (NCCL, graphed) against the same run
#    alone. A run that would overrun the budget is skipped, and says so;
# 3. sparse_fast (eager, static, and inside a CUDA graph) against
#    torch.optim.SparseAdam for 50 steps at 1.28M items, ms/step of STAMP
#    and SR-GNN at 1.28M items in a graph, eager, with SparseAdam and with
#    dense CE, and a 10M-item catalogue (benchmarks/bench_sparse.py --gpu-table);
# 4. every loss in its chosen setting at 1e4, 1e5, 1.28e6 and 1e7 items
#    (benchmarks/bench_losses.py): step time and peak CUDA memory of ce and
#    cce with dense Adam against ns + sparse_fast and the other losses, and cce
#    through the cut-cross-entropy kernel where that package is installed, about
#    60 s (a deadline; the configurations it does not reach say so in the CSV).
# Writes benchmarks/results/gpu_train.csv, gpu_comparison.csv/.json and
# losses_cuda.csv (the card's name is in them).
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
ARGS=("$@")
# CUDA unless the caller names a device (e.g. `--smoke` alone still runs on the GPU)
[[ " ${ARGS[*]-} " == *" --device "* ]] || ARGS=(--device cuda "${ARGS[@]}")
TRAIN_ARGS=()  # bench_train.py takes --device and --smoke of these
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[i]}" in
    --device) TRAIN_ARGS+=(--device "${ARGS[i + 1]}") ;;
    --smoke) TRAIN_ARGS+=(--smoke) ;;
  esac
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# a CPU-only torch (e.g. a .venv built on a laptop) would skip every CUDA test: say which build runs
"$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| available:', torch.cuda.is_available())"
# cce's --cce-kernel cut needs the cut-cross-entropy package: try its pinned wheel
# (--no-deps keeps this torch; a machine without a package index fails fast, and
# the cut rows and test then say "skipped"). For a machine with no index, fetch
# the wheel beforehand where there is one and bring the folder along:
#     pip download --no-deps cut-cross-entropy==25.1.1 -d benchmarks/wheels
WHEELS=(); [ -d benchmarks/wheels ] && WHEELS=(--find-links benchmarks/wheels)
if ! "$PY" -c "import cut_cross_entropy" 2>/dev/null && [[ " ${ARGS[*]} " == *" --device cuda"* ]]; then  # cuda or cuda:N
  timeout 60 "$PY" -m pip install --quiet --no-deps --retries 0 --timeout 5 ${WHEELS[@]+"${WHEELS[@]}"} \
    "cut-cross-entropy==25.1.1" \
    || echo "cut-cross-entropy could not be installed here: the cut kernel's test and benchmark rows are skipped"
fi
if "$PY" -c "import pytest" 2>/dev/null; then
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_optim.py tests/test_losses.py tests/test_graph_wiring.py
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_recent_losses.py -k cut
else
  echo "pytest is not installed here: skipping the unit tests (the checks below still run)"
fi
echo "--- end to end: srs train, one epoch ($(( $(date +%s) - START )) s so far)"
# leave about 100 s for step 3 and 60 s for step 4
"$PY" benchmarks/bench_train.py --ddp-check --deadline $((START + 190)) "${TRAIN_ARGS[@]}"
echo "--- one training step against SparseAdam and dense CE ($(( $(date +%s) - START )) s so far)"
"$PY" benchmarks/bench_sparse.py --gpu-table "${ARGS[@]}"
echo "--- every loss in its chosen setting, 1e4 to 1e7 items ($(( $(date +%s) - START )) s so far)"
# about 60 s, launching nothing after START + 330 s (a child already running is stopped 30 s later)
LOSS_DEADLINE=$(( $(date +%s) + 60 )); (( LOSS_DEADLINE <= START + 330 )) || LOSS_DEADLINE=$((START + 330))
LOSS_SIZES=(--items 10000 100000 1280000 10000000 --repeats 5)
if [[ " ${TRAIN_ARGS[*]-} " == *" --smoke "* ]]; then LOSS_SIZES=(); fi  # --smoke: its own tiny sizes
"$PY" benchmarks/bench_losses.py ${LOSS_SIZES[@]+"${LOSS_SIZES[@]}"} --max-seconds-per-config 30 \
  --deadline "$LOSS_DEADLINE" "${TRAIN_ARGS[@]}"
echo "--- gpu.sh took $(( $(date +%s) - START )) s"
