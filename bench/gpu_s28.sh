#!/usr/bin/env bash
# Session 28's device call (~5 minutes on an H200), from the repository root:
#     bash bench/gpu_s28.sh        (JSON under $OUT, or ./gpu_s28_out)
# Do four processes writing the 32M SH3 streamed SOG on one GPU lose time to torch's CPU threads
# (each process starts one per core)? The same run with torch's default threads and with four
# each (OMP_NUM_THREADS=4 on 16 cores), alternated.
source bench/gpu_prelude.sh gpu_s28
i=0
for arm in default four default four; do
  i=$((i + 1))
  if [ "$arm" = four ]; then export OMP_NUM_THREADS=4; else unset OMP_NUM_THREADS; fi
  timeout 170 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes 4 --work $W/big \
    --json $OUT/streamed_32M_p4_${i}_$arm.json > $W/log_$i.txt 2>&1 || tail -3 $W/log_$i.txt
  summarize $OUT/streamed_32M_p4_${i}_$arm.json
done
