#!/usr/bin/env bash
# Session 26's device call (~7 minutes on an H100), from the repository root:
#     bash bench/gpu_s26.sh        (JSON under $OUT, or ./gpu_s26_out)
# 1. the render metric's cost on 1M SH3 at 80, two warm compressors alternated in one process
#    (bench/metric_cost_bench.py; issue 28's <= 5 %);
# 2. the 32M SH3 streamed SOG's level renders after the projection in parts and the covariances
#    made in chunks (issue 28's peak: 15.0 GB before, against the write's 11.7 GB), input read whole;
# 3. the 32M streamed SOG with 4 and 8 processes and PyTorch's expandable segments, and 4 without,
#    nvidia-smi's peak beside the wall (issue 32's 16 GB).
source bench/gpu_prelude.sh gpu_s26
timeout 150 python3 bench/metric_cost_bench.py $W/one.ply --rounds 12 --json $OUT/metric_cost_1M.json 2>&1 | tail -14
timeout 240 python3 bench/streamed_bench.py --millions 32 --sh 3 --work $W --memory-budget-mb 16000 --render-metric \
  --json $OUT/streamed_32M_metric.json > $OUT/metric.log 2>&1
summarize $OUT/streamed_32M_metric.json; grep "render PSNR" $OUT/metric.log
for run in "4 expandable_segments:True" "8 expandable_segments:True" "4 -"; do
  set -- $run
  conf=$2; [ "$conf" = "-" ] && conf=""
  PYTORCH_CUDA_ALLOC_CONF=$conf timeout 150 python3 bench/streamed_bench.py --millions 32 --sh 3 --work $W --processes $1 \
    --json $OUT/streamed_32M_p$1${conf:+_exp}.json > $OUT/p$1${conf:+_exp}.log 2>&1
  summarize $OUT/streamed_32M_p$1${conf:+_exp}.json
done
rm -f $OUT/*.log
