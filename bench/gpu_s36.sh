#!/usr/bin/env bash
# Session 36's device call: session 35's checks and timings (never run: no device was lent), with
# the engine's rounding added: `gpu_check.py spelling engine raster` (the respelling's closed form,
# the work buffer and the engine model on the device against the CPU, the tile kernel), a 1M SH3
# file at 80 (now with the scale codes on the engine's levels: no scale k-means), the decimation
# groups, then the 32M SH3 streamed SOG by default (two processes) and with three processes and a
# 4M decimation batch (the 16 GB).
# `bash bench/gpu_s36.sh` (no carry; SHORT=1 stops before the 32M runs); JSON under $OUT.
source bench/gpu_prelude.sh gpu_s36
timeout 180 python3 bench/gpu_check.py spelling engine raster 2>&1 | tail -8
timeout 120 python3 bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 --json $OUT/compress_1M_q80.json 2>&1 | tail -2
timeout 120 python3 bench/decimate_bench.py --groups 1 8 --json $OUT/decimate_groups.json 2>&1 | tail -4
if [ -n "$SHORT" ]; then echo "elapsed $SECONDS s (SHORT: the 32M runs left out)"; exit 0; fi
timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes auto --quality 80 --work $W/big \
  --json $OUT/streamed_32M_auto.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
summarize $OUT/streamed_32M_auto.json
timeout 150 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes 3 --decimation-splats 4194304 --quality 80 \
  --work $W/big --json $OUT/streamed_32M_p3_d4194304.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
summarize $OUT/streamed_32M_p3_d4194304.json
echo "elapsed $SECONDS s"
