#!/usr/bin/env bash
# Session 30's fourth device call (~4 minutes), from the repository root:
#     bash bench/gpu_s30d.sh        (JSON under $OUT, or ./gpu_s30d_out)
# The 32M SH3 streamed SOG on one process with one image in our encoder at a time against the
# default two (call 3: four at once took twice the wall).
source bench/gpu_prelude.sh gpu_s30d
for arm in 1 2; do
  timeout 100 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes 1 --device-slots $arm \
    --work $W/big --json $OUT/streamed_32M_p1_slots$arm.json > $W/log_$arm.txt 2>&1 || tail -3 $W/log_$arm.txt
  summarize $OUT/streamed_32M_p1_slots$arm.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('  ', {k: round(v, 1) for k, v in d['stage_seconds_summed'].items()})" $OUT/streamed_32M_p1_slots$arm.json
done
