#!/usr/bin/env bash
# Session 27's second device call (~3 minutes on an H100), from the repository root:
#     bash bench/gpu_s27b.sh        (JSON under $OUT, or ./gpu_s27b_out)
# 1. the output render of the metric (1M SH3, 8 views 512^2) with the drawn splats' colours in
#    torch ops against the Triton kernel (`render.colour_triton`): section times, the images;
# 2. the metric's cost in compress (bench/metric_cost_bench.py) with the kernel, then with the
#    torch colours (the same host, one after the other).
source bench/gpu_prelude.sh gpu_s27b
timeout 120 python3 bench/colour_ab.py $W/one.ply 2>&1 | grep -v Warn
timeout 150 python3 bench/metric_cost_bench.py $W/one.ply --rounds 6 --json $OUT/metric_cost_kernel.json 2>&1 | tail -1
timeout 150 python3 -c "
import runpy, sys
import sogs_core.render.raster as R
R._colour_kernel_here = lambda d: False
sys.argv = ['metric_cost_bench.py', '$W/one.ply', '--rounds', '6', '--json', '$OUT/metric_cost_torch_colours.json']
runpy.run_path('bench/metric_cost_bench.py', run_name='__main__')" 2>&1 | tail -1
