#!/usr/bin/env bash
# A streamed file's leaves with their whole chunks re-chained on a GPU (`order.chain.rechain_runs`,
# commits fe46d04 + 7579f22, reverted after this measurement: bench/NOTES.md, session 31) against
# the Hilbert order alone (the tree before, carried as exp/oldtree: `git archive f919877 sogs_core
# bench | (mkdir -p exp/oldtree && tar -x -C exp/oldtree)`), one process at the CLI's level 80:
# 4M and 32M SH3 (`bash bench/gpu_s31f.sh` from a checkout of 7579f22, carry ["exp/oldtree"]).
source bench/gpu_prelude.sh gpu_s31f
for m in 4 32; do
  for arm in new old; do
    if [ "$arm" = old ]; then tree=exp/oldtree; else tree=.; fi
    PYTHONPATH=$tree timeout 240 python3 $tree/bench/streamed_bench.py --millions $m --sh 3 --processes 1 --quality 80 \
      --work $W/big$m --json $OUT/streamed_${m}M_$arm.json > $W/s_${m}_$arm.txt 2>&1 || tail -3 $W/s_${m}_$arm.txt
    summarize $OUT/streamed_${m}M_$arm.json
  done
done
