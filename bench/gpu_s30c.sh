#!/usr/bin/env bash
# Session 30's third device call (~7 minutes), from the repository root:
#     bash bench/gpu_s30c.sh        (JSON under $OUT, or ./gpu_s30c_out)
# The 32M SH3 streamed SOG with some of our GPU encoder's images moved to libwebp (four
# processes), and one process with four images in our encoder at once instead of two.
source bench/gpu_prelude.sh gpu_s30c
LIB=1000000000
i=0
for run in "4 auto -" "4 labels sh0.webp=$LIB shN_centroids.webp=$LIB" "4 labels_palette sh0.webp=$LIB" \
           "1 slots4 -" "1 auto -"; do
  set -- $run; p=$1; arm=$2; shift 2; i=$((i + 1))
  own=(); slots=()
  [ "$1" != "-" ] && own=(--own-from "$@")
  [ "$arm" = slots4 ] && slots=(--device-slots 4)
  timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes $p "${own[@]}" "${slots[@]}" \
    --work $W/big --json $OUT/streamed_32M_p${p}_$arm.json > $W/log_$i.txt 2>&1 || tail -3 $W/log_$i.txt
  summarize $OUT/streamed_32M_p${p}_$arm.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('  ', {k: round(v, 1) for k, v in d['stage_seconds_summed'].items()})" $OUT/streamed_32M_p${p}_$arm.json
done
