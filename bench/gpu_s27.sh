#!/usr/bin/env bash
# Session 27's device call (~6 minutes on an H100), from the repository root, the scenes and
# splat-transform's files carried in carry/ (carry/scenes/<as ../shared/scenes>, carry/theirs/<scene>.sog):
#     bash bench/gpu_s27.sh        (JSON under $OUT, or ./gpu_s27_out)
# 1. the GPU-only paths against their references (bench/gpu_check.py: the Triton chain walk among them);
# 2. rows a chain chunk wide against splat-transform's square width, same values (exp/gpu_width.py):
#    the five shared scenes and 1M SH3 at 80, bytes and seconds;
# 3. bench/rd_curve.py on the GPU (chain chunk 1024, the GPU's default) against splat-transform's files;
# 4. 1M SH3 at 80: compress time (issue 30's 0.8 s), and the render metric's cost (issue 28's 5 %).
source bench/gpu_prelude.sh gpu_s27
timeout 200 python3 bench/gpu_check.py 2>&1 | tail -15 > $OUT/gpu_check.txt; cat $OUT/gpu_check.txt
S=carry/scenes
OUTJ=$OUT/width.json timeout 200 python3 exp/gpu_width.py $S/real_float/leica-sofort-top8192.ply \
  $S/real_float/donut-mipsplat.ply $S/real/guitar.compressed.ply $S/real/biker.compressed.ply \
  $S/sog_refs/playcanvas-logo_v1/meta.json $W/one.ply 2>&1 | grep -v Warn
timeout 240 python3 bench/rd_curve.py --device cuda --scenes-root $S --theirs carry/theirs \
  --json $OUT/rd_curve_cuda.json 2>&1 | grep -v Warn
timeout 60 python3 bench/compress_bench.py $W/one.ply --repeat 6 --quality 80 --json $OUT/compress_1M_q80.json 2>&1 | grep -E "^total "
timeout 150 python3 bench/metric_cost_bench.py $W/one.ply --rounds 12 --json $OUT/metric_cost_1M.json 2>&1 | tail -1
