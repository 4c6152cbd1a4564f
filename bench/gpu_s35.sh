#!/usr/bin/env bash
# Session 35's device call (prepared in session 34, extended in 35): the respelling's closed form
# on the device against the CPU's (`gpu_check.py spelling`), a 1M SH3 file at 80 (`compress_bench`,
# best of 5), the closed-form eigen-decomposition's effect on a GPU's decimation
# (`decimate_bench.py --groups 1 8`: seconds per chunk group, one group and eight batched;
# session 24's H100: 0.49 and 0.18 s), then the 32M SH3 streamed SOG as `compress` writes it by
# default (`--processes auto`: two on this GPU) at 80, and three or four processes with smaller
# decimation batches (nvidia-smi's peak against the 16 GB).
# `bash bench/gpu_s35.sh` (no carry; SHORT=1 stops before the 32M runs); JSON under $OUT. About 6 minutes with the 32M PLY's writing.
source bench/gpu_prelude.sh gpu_s35
timeout 120 python3 bench/gpu_check.py spelling 2>&1 | tail -4
timeout 120 python3 bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 --json $OUT/compress_1M_q80.json 2>&1 | tail -2
for r in 1; do
  timeout 120 python3 bench/decimate_bench.py --groups 1 8 --json $OUT/decimate_groups_$r.json 2>&1 | tail -4
done
if [ -n "$SHORT" ]; then echo "elapsed $SECONDS s (SHORT: the 32M runs left out)"; exit 0; fi
timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes auto --quality 80 --work $W/big \
  --json $OUT/streamed_32M_auto.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
summarize $OUT/streamed_32M_auto.json
# more processes under the 16 GB: smaller decimation batches (two processes at 4M: 14.2 GB
# in session 34; the default batch is 8M splats)
for pd in "3 4194304"; do
  set -- $pd
  timeout 150 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes $1 --decimation-splats $2 --quality 80 \
    --work $W/big --json $OUT/streamed_32M_p$1_d$2.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
  summarize $OUT/streamed_32M_p$1_d$2.json
done
echo "elapsed $SECONDS s"
