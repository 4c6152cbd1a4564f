#!/usr/bin/env bash
# Session 30's device call (~6 minutes on an H100/H200), from the repository root:
#     bash bench/gpu_s30.sh        (JSON under $OUT, or ./gpu_s30_out)
# 1. The decimation's covariances entry by entry (this tree) against (N, 3, 3) products (the tree
#    before, carried as exp/oldtree): one group and eight groups a call, alternated.
# 2. Where a 32M SH3 streamed SOG's wall goes on one process (bench/streamed_timeline.py).
source bench/gpu_prelude.sh gpu_s30
for arm in new old new old; do
  if [ "$arm" = old ]; then tree=exp/oldtree; else tree=.; fi
  PYTHONPATH=$tree timeout 120 python3 $tree/bench/decimate_bench.py --groups 1 8 --json $OUT/decimate_groups_$arm.json \
    2>&1 | grep groups | sed "s/^/$arm /"
done
PYTHONPATH=. timeout 100 python3 bench/decimate_bench.py --sizes 1000000 4000000 --module exp/oldtree/sogs_core/edit/decimate.py \
  --json $OUT/decimate_sizes.json 2>&1 | grep "n="
timeout 330 python3 bench/streamed_timeline.py --millions 32 --sh 3 --work $W/big --json $OUT/timeline_32M_sh3.json > $W/tl.txt 2>&1
python3 - "$OUT/timeline_32M_sh3.json" <<'PY' || tail -20 $W/tl.txt
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d[k] for k in ("seconds_wall", "groups", "files", "output_bytes", "gpu_util_mean", "gpu_busy_fraction", "peak_gpu_bytes", "cpus")})
print("stages", {k: round(v, 1) for k, v in d["stage_seconds_summed"].items()})
for k, v in d["spans_summary"].items():
    print(f"  {k:28s} n={v['count']:5d} summed {v['summed']:7.1f} union {v['union']:6.1f}")
for k, v in d["webp_by_image"].items():
    print(f"  webp {k:34s} n={v['count']:4d} Mtexels {v['texels']/1e6:7.1f} s {v['seconds']:6.1f}")
PY
