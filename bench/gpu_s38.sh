#!/usr/bin/env bash
# Session 38's device call (issue 32): where the 32M SH3 streamed write at 80 waits now, and
# whether more processes fit the 16 GB when each caps its caching allocator. The default
# (two processes) with the GPU's utilisation sampled each second by `nvidia-smi dmon`; three and
# four processes with each process's allocator capped (`bench/memcap/sitecustomize.py`:
# torch.cuda.set_per_process_memory_fraction at CUDA's start, SOGS_EXP_MEM_CAP_MB); every image
# by libwebp (wall and bytes); one process on `streamed_timeline.py` (spans per thread).
# `bash bench/gpu_s38.sh` (QUICK=1 NO_ONE_PLY=1: the default and three capped processes only; FULL=1 adds a capped pair, the libwebp arm and the timeline); JSON and
# dmon logs under $OUT.
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
export PYTHONPATH=$PWD/bench/memcap
SOGS_EXP_MEM_CAP_MB=4400 big p3_cap4400 --processes 3
[ -z "$QUICK" ] && SOGS_EXP_MEM_CAP_MB=3200 big p4_cap3200_d4M --processes 4 --decimation-splats 4194304
[ -n "$FULL" ] && SOGS_EXP_MEM_CAP_MB=6800 big p2_cap6800 --processes 2
unset PYTHONPATH
[ -n "$FULL" ] && big p2_libwebp --processes 2 --webp-encoder libwebp
[ -n "$FULL" ] && timeout 200 python3 bench/streamed_timeline.py --millions 32 --sh 3 --quality 80 --work $W/big \
  --json $OUT/timeline_32M_p1.json 2>&1 | grep -v USDT | tail -30
echo "elapsed $SECONDS s"
