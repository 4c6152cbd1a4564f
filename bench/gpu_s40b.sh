#!/usr/bin/env bash
# Session 40's device call (issue 32): where a 32M SH3 streamed write at 80 spends its threads'
# time on one GPU. One plain `--processes auto` run (nvidia-smi dmon beside it), then the same
# run under py-spy (every process, every thread, idle waits and native frames), raw stacks to
# $OUT/spy_32M.txt (session 40 summed them per process, thread and frame; `--native` crashed
# py-spy there, so that call ran without it). py-spy comes in as a carried binary
# (PYSPY=path; none: the plain run only). `bash bench/gpu_s40b.sh`; about 6 minutes.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s40b
PYSPY=${PYSPY:-.venv/bin/py-spy}
nvidia-smi dmon -s um -d 1 > $OUT/dmon_plain.txt 2>&1 & mon=$!
timeout 400 python3 bench/streamed_bench.py --millions 32 --sh 3 --quality 80 --work $W/big \
  --processes auto --json $OUT/streamed_32M_auto_plain.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
kill $mon 2>/dev/null
summarize $OUT/streamed_32M_auto_plain.json
echo "elapsed $SECONDS s"
if [ -x "$PYSPY" ]; then
  timeout 150 "$PYSPY" record --subprocesses --idle --threads --native -r 40 -f raw -o $OUT/spy_32M.txt -- \
    python3 bench/streamed_bench.py --millions 32 --sh 3 --quality 80 --work $W/big --processes auto \
    --json $OUT/streamed_32M_auto_spy.json > $W/spy.txt 2>&1 || tail -5 $W/spy.txt
  summarize $OUT/streamed_32M_auto_spy.json
  ls -la $OUT/spy_32M.txt
fi
echo "elapsed $SECONDS s"
