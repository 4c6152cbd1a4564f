#!/usr/bin/env bash
# Session 38's device call (issue 32): where the 32M SH3 streamed write at 80 waits now. The
# default (two processes) with the GPU's utilisation sampled each second by `nvidia-smi dmon`,
# every image by libwebp for comparison (wall and bytes), three processes with expandable
# segments (memory), and one process on `streamed_timeline.py` (spans per thread, the GPU busy).
# `bash bench/gpu_s38.sh` (no carry); JSON and dmon logs under $OUT.
source bench/gpu_prelude.sh gpu_s38
big() {  # label [extra args]
  nvidia-smi dmon -s um -d 1 > $OUT/dmon_$1.txt 2>&1 & local mon=$!
  timeout 150 python3 bench/streamed_bench.py --millions 32 --sh 3 --quality 80 --work $W/big \
    --json $OUT/streamed_32M_$1.json "${@:2}" > $W/s.txt 2>&1 || tail -3 $W/s.txt
  kill $mon 2>/dev/null
  summarize $OUT/streamed_32M_$1.json
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); print({k: round(v,1) for k,v in d['stage_seconds_summed'].items()})" $OUT/streamed_32M_$1.json
  awk '!/^#/ {n++; sm+=$2} END {if (n) printf "dmon: %d samples, mean SM %.0f %%\n", n, sm/n}' $OUT/dmon_$1.txt
}
big p2 --processes 2
big p2_libwebp --processes 2 --webp-encoder libwebp
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True big p3_expandable --processes 3
timeout 200 python3 bench/streamed_timeline.py --millions 32 --sh 3 --quality 80 --work $W/big \
  --json $OUT/timeline_32M_p1.json 2>&1 | grep -v USDT | tail -30
echo "elapsed $SECONDS s"
