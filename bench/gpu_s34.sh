#!/usr/bin/env bash
# Whether `--processes auto` should write a streamed SOG with more than one process on a GPU now
# that a process holds ~8.5 GB (session 33): the 32M SH3 scene at 80 with 1, 2 and 4 processes,
# twice, alternated on one machine, then 2 processes with half the decimation batch; the wall,
# the bytes and nvidia-smi's peak over every process for each (issue 32: <= 20 s, <= 16 GB).
# Then one 1M SH3 file's kernel launches by call site (bench/launch_sites.py, now recording every
# thread's ops). `bash bench/gpu_s34.sh` (no carry); JSON under $OUT. About 7 minutes with the
# 32M PLY's writing (~90 s); `SMALL=1` skips the second round.
source bench/gpu_prelude.sh gpu_s34
big() {  # processes round [extra args]
  timeout 150 python3 bench/streamed_bench.py --millions 32 --sh 3 --processes $1 --quality 80 --work $W/big \
    --json $OUT/streamed_32M_p$1_$2.json "${@:3}" > $W/s.txt 2>&1 || tail -3 $W/s.txt
  summarize $OUT/streamed_32M_p$1_$2.json
}
for p in 2 1 4; do big $p 1; done
[ -z "$SMALL" ] && for p in 4 1 2; do big $p 2; done
big 2 half --decimation-splats 4194304
timeout 90 python3 bench/launch_sites.py $W/one.ply --top 30 --json $OUT/launch_sites_1m.json 2>&1 | grep -v USDT | tail -32
echo "elapsed $SECONDS s"
