#!/usr/bin/env bash
# Session 30's second device call (~7 minutes), from the repository root:
#     bash bench/gpu_s30b.sh        (JSON under $OUT, or ./gpu_s30b_out)
# The 32M SH3 streamed SOG with every image by libwebp on the host's cores against the default
# (our GPU encoder for sh0, the SH labels and the palette): four processes and one.
source bench/gpu_prelude.sh gpu_s30b
i=0
for run in "4 auto" "4 libwebp" "1 libwebp" "1 auto"; do
  set -- $run; i=$((i + 1))
  timeout 200 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes $1 --webp-encoder $2 \
    --work $W/big --json $OUT/streamed_32M_p$1_$2.json > $W/log_$i.txt 2>&1 || tail -3 $W/log_$i.txt
  summarize $OUT/streamed_32M_p$1_$2.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('  ', {k: round(v, 1) for k, v in d['stage_seconds_summed'].items()})" $OUT/streamed_32M_p$1_$2.json
done
