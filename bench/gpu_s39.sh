#!/usr/bin/env bash
# Session 39's device call (issue 32): the library's own cap (`write_streamed(process_gpu_mib=)`,
# `--process-gpu-memory`) with `--processes auto` (three on a GPU of 24 GiB or more) against two
# uncapped processes, alternated, on the 32M SH3 streamed SOG at 80, and four capped at 2400;
# nvidia-smi's peak and `dmon` utilisation each. `bash bench/gpu_s39.sh`; JSON and dmon logs under $OUT.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s39
big() {  # label [extra args]
  nvidia-smi dmon -s um -d 1 > $OUT/dmon_$1.txt 2>&1 & local mon=$!
  timeout ${TMO:-200} python3 bench/streamed_bench.py --millions 32 --sh 3 --quality 80 --work $W/big \
    --json $OUT/streamed_32M_$1.json "${@:2}" > $W/s.txt 2>&1 || tail -3 $W/s.txt
  kill $mon 2>/dev/null
  summarize $OUT/streamed_32M_$1.json
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); print({k: round(v,1) for k,v in d['stage_seconds_summed'].items()})" $OUT/streamed_32M_$1.json
}
TMO=320 big auto_a --processes auto          # the first run writes the 32M PLY too (minutes)
big p2_uncapped --processes 2 --process-gpu-mib 0
big auto_b --processes auto
big p4_c2400 --processes 4 --process-gpu-mib 2400   # 2000 ran out of memory in one call
echo "elapsed $SECONDS s"
