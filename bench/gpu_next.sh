#!/usr/bin/env bash
# What session 25 built and could not time on a GPU (its device time ran out), in one call of the
# device tool (~8 minutes on an H100), from the repository root:
#     bash bench/gpu_next.sh        (JSON under $OUT, or ./gpu_next_out)
# 1. the 32M SH3 streamed SOG with --processes 1, 2 and 4 on the same host (issue 32);
# 2. its levels rendered against the input after the colour chunking (issue 28's peak: 15.0 GB
#    before, on an H200), input read whole;
# 3. the merge with the Jacobi sweeps' early stop (decimate_bench --groups 1 8);
# 4. compress of 1M SH3 at 80 with and without the render metric, alternating (its input renders
#    now on the caller's stream: time and peak reserved memory against session 25's 0.06 s, 18.9 GB).
source bench/gpu_prelude.sh gpu_next
for r in 1 2; do
  timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --render-metric --json $OUT/single_1M_metric_$r.json 2>&1 | grep -E "^(render|total) "
  timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --json $OUT/single_1M_$r.json 2>&1 | grep -E "^(total) "
done
python3 -c "import json,sys; [print(f, json.load(open(f)).get('peak_gpu_reserved_bytes')) for f in sys.argv[1:]]" $OUT/single_1M*.json
timeout 120 python3 bench/decimate_bench.py --groups 1 8 --json $OUT/decimate_groups.json 2>&1 | tail -3
for p in 1 4 2; do
  timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --work $W --processes $p --json $OUT/streamed_32M_p$p.json > $OUT/p$p.log 2>&1
  summarize $OUT/streamed_32M_p$p.json
done
timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --work $W --memory-budget-mb 16000 --render-metric --json $OUT/streamed_32M_metric.json > $OUT/metric.log 2>&1
summarize $OUT/streamed_32M_metric.json
