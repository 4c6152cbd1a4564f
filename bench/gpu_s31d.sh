#!/usr/bin/env bash
# The chained order's images started ahead of the order's choice against after it, on the real
# scenes (carried in carry/scenes: the four PLYs of ../shared/scenes/real*/, the logo and playbot
# SOG folders) and the 1M SH3 synthetic (where Morton wins the choice and the images ahead are
# dropped), alternated in one process each (`bash bench/gpu_s31d.sh`, carry ["carry"]).
source bench/gpu_prelude.sh gpu_s31d
S=carry/scenes
timeout 300 python3 bench/images_ahead_ab.py $S/leica-sofort-top8192.ply $S/donut-mipsplat.ply $S/guitar.compressed.ply \
  $S/biker.compressed.ply $S/playcanvas-logo_v1/meta.json $S/playbot_0_0/meta.json $W/one.ply --rounds 8 \
  --json $OUT/images_ahead_ab.json 2>&1 | grep -v Warn
