#!/usr/bin/env bash
# Prepared for the next device call (issue 32): does `--processes auto`'s threshold still fit now
# that the processes cap their allocators? 8M and 16M SH3 streamed at 80 with one process and
# with three capped at 2800 MiB, alternated (one, three, one, three), and the single 8M SOG (the
# issue's 1.5x); nvidia-smi's peak each. One call of about 7 minutes on an H100, most of it
# writing the two PLYs. `bash bench/gpu_s40.sh` (ONLY8=1: 8M once each way and the single file,
# about 2 minutes); JSON under $OUT.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s40
run() {  # millions label [extra args]
  timeout 240 python3 bench/streamed_bench.py --millions $1 --sh 3 --quality 80 --work $W/m$1 \
    --json $OUT/streamed_$1M_$2.json "${@:3}" > $W/s.txt 2>&1 || tail -3 $W/s.txt
  summarize $OUT/streamed_$1M_$2.json
}
if [ -n "$ONLY8" ]; then  # a short call: 8M once each way, then the single 8M SOG
  run 8 p1a --processes 1
  run 8 p3a --processes 3 --process-gpu-mib 2800
  timeout 60 python3 bench/compress_bench.py $W/m8/synth_8000000_sh3.ply --quality 80 --repeat 2 \
    --json $OUT/compress_8M_q80.json 2>&1 | tail -3
  echo "elapsed $SECONDS s"; exit 0
fi
for m in 8 16; do
  run $m p1a --processes 1          # the first run writes the PLY
  run $m p3a --processes 3 --process-gpu-mib 2800
  run $m p1b --processes 1
  run $m p3b --processes 3 --process-gpu-mib 2800
done
timeout 120 python3 bench/compress_bench.py $W/m8/synth_8000000_sh3.ply --quality 80 --repeat 3 \
  --json $OUT/compress_8M_q80.json 2>&1 | tail -3
echo "elapsed $SECONDS s"
