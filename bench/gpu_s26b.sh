#!/usr/bin/env bash
# Session 26's second device call (~6 minutes on an H100), from the repository root, after the
# Compressor asks PyTorch for expandable segments (`model.device.prefer_expandable_segments`):
#     bash bench/gpu_s26b.sh        (JSON under $OUT, or ./gpu_s26b_out)
# 1. the 32M SH3 streamed SOG, 1 and 4 processes, no allocator variable set: nvidia-smi's peak
#    (expected ~15 and ~31 GB as with the variable set by hand);
# 2. compress of 1M SH3 at 80 with the new default against the old allocator (the variable set
#    empty, which a user's setting means), alternated in fresh processes: time and peak reserved;
# 3. the render metric's cost under the new default (bench/metric_cost_bench.py).
unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF
source bench/gpu_prelude.sh gpu_s26b
for p in 1 4; do
  timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --work $W --processes $p \
    --json $OUT/streamed_32M_p$p.json > /dev/null 2>&1
  summarize $OUT/streamed_32M_p$p.json
done
for r in 1 2 3; do
  timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 5 --quality 80 --json $W/new_$r.json 2>&1 | grep -E "^total "
  PYTORCH_CUDA_ALLOC_CONF= timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 5 --quality 80 --json $W/old_$r.json 2>&1 | grep -E "^total "
done
python3 - "$W" > $OUT/compress_allocator.txt <<'PY'
import json, statistics, sys
for kind in ("new", "old"):
    runs = [json.load(open(f"{sys.argv[1]}/{kind}_{r}.json")) for r in (1, 2, 3)]
    t = [x["seconds"]["total"] for d in runs for x in d["runs"]]
    print(kind, "median", round(statistics.median(t), 3), "best", round(min(t), 3),
          "peak reserved", [d["peak_gpu_reserved_bytes"] for d in runs])
PY
cat $OUT/compress_allocator.txt
timeout 150 python3 bench/metric_cost_bench.py $W/one.ply --rounds 12 --json $OUT/metric_cost_1M.json 2>&1 | tail -1
