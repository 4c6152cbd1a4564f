#!/usr/bin/env bash
# The 32M SH3 streamed SOG as `sogs-cluster compress` writes it by default on a GPU (one process)
# at the CLI's default level 80 and at 100 (the benchmark's default since the issue was filed):
# `bash bench/gpu_s31e.sh` from the repository root, JSON under $OUT.
source bench/gpu_prelude.sh gpu_s31e
for q in 80 100; do
  timeout 260 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes 1 --quality $q \
    --work $W/big --json $OUT/streamed_32M_p1_q$q.json > $W/s_$q.txt 2>&1 || tail -3 $W/s_$q.txt
  summarize $OUT/streamed_32M_p1_q$q.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(v,1) for k,v in d['stage_seconds_summed'].items()}, 'generate', round(d['seconds_generate'],1))" $OUT/streamed_32M_p1_q$q.json
done
