#!/usr/bin/env bash
# Session 42's last device call (issue 32): the VP8L tile grouping run side by side (this tree)
# against the tree before it (exp/base: `git archive 85fda2e`, carried; BASE=path), 32M SH3 streamed at 80 with
# --processes auto (MPS, the default), alternated twice; then one 540k SH3 compress's kernel
# launches by call site (bench/launch_sites.py) for what to cut next. `bash bench/gpu_s42d.sh`.
# Prepared in session 42 and not run: the device tool had no machine left for it.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s42d
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
BASE=${BASE:-exp/base}
one() {  # tree label millions [streamed_bench options]
  local tree=$1 label=$2 m=$3; shift 3
  (cd $tree && timeout 150 python3 bench/streamed_bench.py --millions $m --sh 3 --quality 80 --work $W/m$m \
    --processes auto "$@" --json $OUT/streamed_${m}M_$label.json > $W/s.txt 2>&1) || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], 'mps', d.get('mps'), d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1])" $OUT/streamed_${m}M_$label.json
}
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
os.makedirs('$W/m32', exist_ok=True)
write_big_ply('$W/m32/synth_32000000_sh3.ply', 32000000, 3)" > /dev/null
echo "scene written at $SECONDS s"
one . warm 2 > /dev/null     # kernels compiled once (a 2M scene: one process)
one $BASE base_a 32; one . new_a 32; one $BASE base_b 32; one . new_b 32
echo "elapsed $SECONDS s"
timeout 120 python3 bench/launch_sites.py --synthetic 540000 --sh 3 --quality 80 --top 70 2>&1 | grep -v USDT | tail -72
echo "elapsed $SECONDS s"
