#!/usr/bin/env bash
# Trains the generator shipped as vidsynth's default weights (vidsynth/weights/default).
#
#   scripts/train_default.sh DATA_DIR RUN_DIR
#
# DATA_DIR: the MoCoGAN actions clips (64x64 strips, classes 0, 1, 3, 4); RUN_DIR gets
# checkpoint/, samples/ and weights/. MAX_MINUTES caps this call's wall time (it checkpoints
# before stopping); run the script again with RESUME=1 to continue from the checkpoint.
# PID_FILE, when set, holds the training process id while it runs.
set -euo pipefail
DATA_DIR=${1:?usage: train_default.sh DATA_DIR RUN_DIR}
RUN_DIR=${2:?usage: train_default.sh DATA_DIR RUN_DIR}
MAX_MINUTES=${MAX_MINUTES:-120}
RESUME_FLAG=()
if [[ "${RESUME:-0}" == 1 ]]; then RESUME_FLAG=(--resume); fi

vidsynth train --data "$DATA_DIR" --out "$RUN_DIR" "${RESUME_FLAG[@]}" \
    --image-size 64 --cell gru --motion-mode feedback --ngf 32 --ndf 32 \
    --batch 16 --clip-frames 16 --frame-step 2 --steps 20000 \
    --bf16 --threads 1 --seed 0 --checkpoint-every 200 --sample-every 250 \
    --max-minutes "$MAX_MINUTES" &
TRAIN_PID=$!
if [[ -n "${PID_FILE:-}" ]]; then echo "$TRAIN_PID" > "$PID_FILE"; fi
trap 'kill -TERM "$TRAIN_PID" 2>/dev/null || true' TERM INT
status=0
wait "$TRAIN_PID" || status=$?
# A trapped signal interrupts the first wait: wait again for the checkpoint to finish.
if kill -0 "$TRAIN_PID" 2>/dev/null; then wait "$TRAIN_PID" || status=$?; fi
if [[ -n "${PID_FILE:-}" ]]; then rm -f "$PID_FILE"; fi
exit "$status"
