#!/usr/bin/env bash
# The chained order's images started ahead of the choice (`images_ahead`, on by default) against
# started after it (`--no-images-ahead`), 1M SH3 single files at 80, alternated on one host
# (from the repository root: `bash bench/gpu_s31c.sh`, JSON under $OUT); then the steps' timeline.
source bench/gpu_prelude.sh gpu_s31c
for round in 1 2 3; do
  for arm in ahead after; do
    flag=""; [ $arm = after ] && flag="--no-images-ahead"
    timeout 120 python3 bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 $flag \
      --json $OUT/compress_1m_${arm}_$round.json > $W/c.txt 2>&1 || tail -3 $W/c.txt
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=sorted(x['seconds']['total'] for x in d['runs']); b=d['best']; print('$arm', 'best', round(r[0],3), 'median', round(r[len(r)//2],3), {k: round(v,3) for k,v in b['seconds'].items()}, b['output_bytes'])" $OUT/compress_1m_${arm}_$round.json
  done
done
timeout 120 python3 bench/stage_profile.py $W/one.ply --quality 80 --repeat 4 --json $OUT/profile_1m_q80.json 2>&1 | tail -12
