#!/usr/bin/env bash
# Trains the generator shipped as vidsynth's default weights (vidsynth/weights/default).
#
#   scripts/train_default.sh DATA_DIR RUN_DIR
#
# DATA_DIR: the MoCoGAN actions clips (64x64 strips, classes 0, 1, 3, 4); RUN_DIR gets
# checkpoint/, samples/ and weights/. The shipped weights are 7,928 steps of this recipe on one
# CUDA GPU (6.5 minutes on an H200 shared with a second run; about 28 steps/s alone there).
# DEVICE=cpu runs the same recipe on the CPU with bf16 autocast: 7-11 s per step on 2 cores
# (12 steps measured), about a day for 7,928 steps.
# STEPS sets the total; MAX_MINUTES caps this call's wall time (it checkpoints before
# stopping); run the script again with RESUME=1 to continue from the checkpoint.
# PID_FILE, when set, holds the training process id while it runs.
set -euo pipefail
DATA_DIR=${1:?usage: train_default.sh DATA_DIR RUN_DIR}
RUN_DIR=${2:?usage: train_default.sh DATA_DIR RUN_DIR}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-7928}
MAX_MINUTES=${MAX_MINUTES:-0}
EXTRA=()
if [[ "${RESUME:-0}" == 1 ]]; then EXTRA+=(--resume); fi
if [[ "$DEVICE" == cpu ]]; then EXTRA+=(--bf16); fi
if [[ "$MAX_MINUTES" != 0 ]]; then EXTRA+=(--max-minutes "$MAX_MINUTES"); fi

vidsynth train --data "$DATA_DIR" --out "$RUN_DIR" "${EXTRA[@]}" \
    --image-size 64 --cell gru --motion-mode feedback --ngf 64 --ndf 64 \
    --batch 32 --clip-frames 16 --frame-step 2 --steps "$STEPS" \
    --device "$DEVICE" --threads 2 --seed 0 --checkpoint-every 2000 --sample-every 2000 &
TRAIN_PID=$!
if [[ -n "${PID_FILE:-}" ]]; then echo "$TRAIN_PID" > "$PID_FILE"; fi
trap 'kill -TERM "$TRAIN_PID" 2>/dev/null || true' TERM INT
status=0
wait "$TRAIN_PID" || status=$?
# A trapped signal interrupts the first wait: wait again for the checkpoint to finish.
if kill -0 "$TRAIN_PID" 2>/dev/null; then wait "$TRAIN_PID" || status=$?; fi
if [[ -n "${PID_FILE:-}" ]]; then rm -f "$PID_FILE"; fi
exit "$status"
