#!/usr/bin/env bash
# Session 29's second device call (~5 minutes), from the repository root:
#     bash bench/gpu_s29b.sh        (JSON under $OUT, or ./gpu_s29b_out)
# 1M SH3 at the default level with the render metric, this tree against the tree before the
# index_select gathers (carried as exp/oldtree), alternated; then the GPU kernels' checks
# (the chain walk's Triton kernel against the new integer torch walk among them).
source bench/gpu_prelude.sh gpu_s29b
for i in 1 2 3; do
  for arm in new old; do
    if [ "$arm" = old ]; then tree=exp/oldtree; else tree=.; fi
    PYTHONPATH=$tree timeout 120 python3 $tree/bench/compress_bench.py $W/one.ply --quality 80 --repeat 4 \
      --render-metric --json $OUT/compress_1m_sh3_q80_${i}_$arm.json > $W/c_${i}_$arm.txt 2>&1 || tail -3 $W/c_${i}_$arm.txt
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1].split('/')[-1], [round(r['seconds']['total'], 3) for r in d['runs']], d['best']['output_bytes'], d['fidelity'].get('render_psnr'))" $OUT/compress_1m_sh3_q80_${i}_$arm.json
  done
done
timeout 240 bash bench/gpu_check.sh > $OUT/gpu_check.txt 2>&1; tail -25 $OUT/gpu_check.txt
