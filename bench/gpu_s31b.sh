#!/usr/bin/env bash
# Where a 1M SH3 single file's time goes at the CLI's default level on this host (from the
# repository root: `bash bench/gpu_s31b.sh`, JSON under $OUT): the host's CPU, the steps inside
# the stages (`stage_profile.py`, 80), and the three WebP encoder choices (`compress_bench.py`).
source bench/gpu_prelude.sh gpu_s31b
lscpu | grep -E "Model name|^CPU\(s\)"
timeout 120 python3 bench/stage_profile.py $W/one.ply --quality 80 --repeat 4 --json $OUT/profile_1m_q80.json 2>&1 | tail -32
for enc in auto own libwebp auto; do
  timeout 120 python3 bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 --webp-encoder $enc \
    --json $OUT/compress_1m_$enc.json > $W/c_$enc.txt 2>&1 || tail -3 $W/c_$enc.txt
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); b=d['best']; print('$enc', round(b['seconds']['total'],3), {k: round(v,3) for k,v in b['seconds'].items()}, b['output_bytes'])" $OUT/compress_1m_$enc.json
done
