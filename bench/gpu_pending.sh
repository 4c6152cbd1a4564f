#!/usr/bin/env bash
# The GPU measurements issues 28 and 32 wait for (session 20 had no device machine), in one call
# of the device tool (~8 minutes on an H200), from the repository root:
#     bash bench/gpu_pending.sh        (JSON under $OUT, or ./gpu_pending_out without it)
# 1. the render metric's tile kernel against the fragments (gpu_check) and its cost (render_bench,
#    compress_bench --render-metric: the 5 % of a 1M SH3 compression);
# 2. a 32M SH3 streamed SOG on a timeline with one GPU slot and with two;
# 3. 8M streamed against the single 8M SOG (issue 32's 1.5x);
# and the chain order's chunk (256/1024/2048) timed on a 1M SH3 compression.
# Parts, for one device call of at most 10 minutes each: PART=render (the render metric's cost
# alone, its variants side by side, and the decimation on 1/4/8 groups), PART=s24 (the 32M
# timeline, then the metric's cost) or s24small (8M streamed and the metric's cost: ~2 minutes),
# PART=metric (1 and 3), PART=huge (2), or
# PART=lean (1, the 32M timeline with one slot, then 3, in that order, so that what matters most
# comes back if the call runs out); everything when PART is unset.
set -x
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_pending_out}; mkdir -p "$OUT"
W=${WORK:-/tmp/gpu_pending}; mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
PART=${PART:-all}
S="import sys,json; d=json.load(open(sys.argv[1])); print({k: d[k] for k in ('seconds_wall','files','output_bytes','peak_gpu_bytes','gpu_util_mean','gpu_busy_fraction')}); print({k: round(v,2) for k,v in d['stage_seconds_summed'].items()}); [print(k, v) for k,v in d['spans_summary'].items()]; [print(k, v) for k,v in d['webp_by_image'].items()]"
if [ "$PART" = s24small ]; then
# what fits a short call: 8M streamed (session 23's command, comparable), the raster check, the
# metric's cost
timeout 100 python3 bench/streamed_bench.py --millions 8 --sh 3 --work $W --json $OUT/streamed_8M_sh3.json 2>&1 | grep -E "wall|output_bytes|peak|decimate"
timeout 60 python3 -c "
import sys; sys.path.insert(0,'bench')
from streamed_bench import write_big_ply
write_big_ply('$W/one.ply', 1048576, 3)"
timeout 40 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --json $OUT/render_1M.json 2>&1 | tail -1
timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 3 --quality 80 --render-metric --json $OUT/single_1M_metric.json 2>&1 | grep -E "^(render|total) "
timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 3 --quality 80 --json $OUT/single_1M.json 2>&1 | grep -E "^(render|total) "
timeout 60 python3 bench/gpu_check.py raster 2>&1 | grep -E "raster|failed|passed"
exit 0
fi
if [ "$PART" = s24 ]; then
# session 24: the 32M streamed SOG with eight groups per decimation call first (issue 32's
# figure), then the raster after project_views and the metric's cost (issue 28)
timeout 300 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W --json $OUT/timeline_32M_slots1.json > $OUT/t1.log 2>&1; python3 -c "$S" $OUT/timeline_32M_slots1.json
timeout 90 python3 bench/gpu_check.py raster 2>&1 | grep -E "raster|failed|passed"
timeout 60 python3 -c "
import sys; sys.path.insert(0,'bench')
from streamed_bench import write_big_ply
write_big_ply('$W/one.ply', 1048576, 3)"
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --json $OUT/render_1M.json 2>&1 | tail -1
timeout 90 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --render-metric --json $OUT/single_1M_metric.json 2>&1 | grep -E "^(render|total) "
timeout 90 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --json $OUT/single_1M.json 2>&1 | grep -E "^(render|total) "
exit 0
fi
if [ "$PART" = render ]; then
# the render metric's cost alone (issue 28): views batched per launch against one launch a view,
# running product against log sums, a profile, and compress with and without the metric
timeout 150 python3 bench/gpu_check.py 2>&1 | grep -E "raster|failed|passed"
timeout 60 python3 -c "
import sys; sys.path.insert(0,'bench')
from streamed_bench import write_big_ply
write_big_ply('$W/one.ply', 1048576, 3)"
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --json $OUT/render_1M.json 2>&1 | tail -1
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --log-transmittance --json $OUT/render_1M_log.json 2>&1 | tail -1
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --one-view-per-launch --json $OUT/render_1M_per_view.json 2>&1 | tail -1
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 2 --profile --json /tmp/p.json 2>&1 | tail -22 | cut -c1-60,100-200
timeout 90 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --render-metric --json $OUT/single_1M_metric.json 2>&1 | grep -E "^(render|total) "
timeout 90 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --json $OUT/single_1M.json 2>&1 | grep -E "^(render|total) "
# issue 32: a streamed SOG's decimation on 1, 4 and 8 chunk groups at once
timeout 150 python3 bench/decimate_bench.py --groups 1 4 8 --profile --json $OUT/decimate_groups.json 2>&1 | tail -24 | cut -c1-60,100-200
exit 0
fi
if [ "$PART" != huge ]; then
timeout 120 python3 bench/gpu_check.py 2>&1 | tail -30
timeout 60 python3 -c "
import sys; sys.path.insert(0,'bench')
from streamed_bench import write_big_ply
write_big_ply('$W/one.ply', 1048576, 3)"
timeout 60 python3 bench/render_bench.py $W/one.ply --device cuda --repeat 5 --profile --json $OUT/render_1M.json 2>&1 | tail -30
timeout 90 python3 bench/compress_bench.py $W/one.ply --repeat 4 --quality 80 --render-metric --json $OUT/single_1M_metric.json 2>&1 | tail -25
# the chain order's chunk on the GPU: seconds and bytes of the same 1M SH3 compression
for k in 256 1024 2048; do timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 3 --quality 80 --chain-chunk $k --json $OUT/chain_$k.json 2>&1 | grep -E "^(sort|total) |bytes"; done
fi
[ "$PART" = metric ] || timeout 260 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W --json $OUT/timeline_32M_slots1.json > $OUT/t1.log 2>&1; python3 -c "$S" $OUT/timeline_32M_slots1.json
if [ "$PART" != huge ]; then
timeout 100 python3 bench/streamed_bench.py --millions 8 --sh 3 --work $W --json $OUT/streamed_8M_sh3.json 2>&1 | grep -E "wall|output_bytes|peak"
timeout 60 python3 bench/compress_bench.py $W/synth_8000000_sh3.ply --repeat 2 --quality 80 --json $OUT/single_8M_sh3.json 2>&1 | tail -8
fi
[ "$PART" = metric ] || [ "$PART" = lean ] && exit 0
timeout 150 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W --gpu-slots 2 --json $OUT/timeline_32M_slots2.json > $OUT/t2.log 2>&1; python3 -c "$S" $OUT/timeline_32M_slots2.json
