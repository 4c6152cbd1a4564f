#!/usr/bin/env bash
# Session 25's device call (issue 32): the palette search's row blocks built without reading
# back from the device (gpu_check kmeans, fit_palette's profile), then the 32M SH3 streamed
# timeline with Python's default GIL switch interval and with 0.5 ms. From the repository root:
#     bash bench/gpu_s25.sh      (JSON under $OUT, or ./gpu_s25_out)
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_s25_out}; W=${WORK:-/tmp/gp}; mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
S="import sys,json; d=json.load(open(sys.argv[1])); print({k: d[k] for k in ('seconds_wall','files','output_bytes','peak_gpu_bytes','gpu_util_mean')}); print({k: round(v,2) for k,v in d['stage_seconds_summed'].items()}); [print(k, v) for k,v in d['spans_summary'].items() if k in ('build_levels','fit_palette','leaf_bounds','lock_held','lock_wait','quantize_splats','order_scene','webp')]"
timeout 120 python3 bench/gpu_check.py kmeans 2>&1 | grep -E "PASS|FAIL|passed|failed"
timeout 60 python3 bench/kmeans_bench.py --fit --profile --n 537000 --k 65536 --json $OUT/fit_537k.json 2>&1 | grep -v -i "USDT\|warn" | tail -34
timeout 250 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W --json $OUT/timeline_32M.json > $OUT/t1.log 2>&1; python3 -c "$S" $OUT/timeline_32M.json
timeout 120 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W --switch-interval-ms 0.5 --json $OUT/timeline_32M_switch05.json > $OUT/t2.log 2>&1; python3 -c "$S" $OUT/timeline_32M_switch05.json
