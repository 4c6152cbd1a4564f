#!/usr/bin/env bash
# Session 29's device call (~6 minutes on an H100/H200), from the repository root:
#     bash bench/gpu_s29.sh        (JSON under $OUT, or ./gpu_s29_out)
# The 32M SH3 streamed SOG by four processes with runs cut at chunk groups (this tree) against
# runs of whole coarsest buckets (the tree before, carried as exp/oldtree), alternated.
source bench/gpu_prelude.sh gpu_s29
i=0
for arm in groups buckets groups buckets; do
  i=$((i + 1))
  if [ "$arm" = buckets ]; then tree=exp/oldtree; else tree=.; fi
  PYTHONPATH=$tree timeout 170 python3 $tree/bench/streamed_bench.py --millions 32 --sh 3 --processes 4 \
    --work $W/big --json $OUT/streamed_32M_p4_${i}_$arm.json > $W/log_$i.txt 2>&1 || tail -3 $W/log_$i.txt
  summarize $OUT/streamed_32M_p4_${i}_$arm.json
done
