#!/usr/bin/env bash
# Prepared in session 34, not run there (the device could not be started again): the closed-form
# eigen-decomposition's effect on a GPU's decimation (`decimate_bench.py --groups 1 8`: seconds per
# chunk group, one group and eight batched; session 24's H100: 0.49 and 0.18 s), then the 32M SH3
# streamed SOG as `compress` now writes it by default (`--processes auto`: two on this GPU) at 80.
# `bash bench/gpu_s35.sh` (no carry); JSON under $OUT. About 4 minutes with the 32M PLY's writing.
source bench/gpu_prelude.sh gpu_s35
for r in 1 2; do
  timeout 120 python3 bench/decimate_bench.py --groups 1 8 --json $OUT/decimate_groups_$r.json 2>&1 | tail -4
done
timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes auto --quality 80 --work $W/big \
  --json $OUT/streamed_32M_auto.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
summarize $OUT/streamed_32M_auto.json
echo "elapsed $SECONDS s"
