#!/usr/bin/env bash
# Session 43's first device call (issue 32): session 42's fewer encoder calls timed on 32M SH3
# streamed at 80 against the tree before them (exp/base: `git archive 85fda2e`, carried;
# BASE=path), alternated twice; then more writing processes under the MPS server with smaller
# allocator caps (what fits 16 GB), the calling process inside a hand-started MPS daemon with
# them (the writer's own server leaves it outside), and a 540k file's kernel launches by call site.
# `bash bench/gpu_s43a.sh` (M=16 for a 16M scene, when the device time left is short); ~8 minutes at 32M.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s43a
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
BASE=${BASE:-exp/base}
M=${M:-32}
one() {  # tree label millions [streamed_bench options]
  local tree=$1 label=$2 m=$3; shift 3
  (cd $tree && timeout 120 python3 bench/streamed_bench.py --millions $m --sh 3 --quality 80 --work $W/m$m \
    --processes auto "$@" --json $OUT/streamed_${m}M_$label.json > $W/s.txt 2>&1) || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], 'mps', d.get('mps'), d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'util', round(d.get('gpu_utilization', {}).get('mean', -1)), 'first', t[0], 'last', t[-1], {k: round(v, 1) for k, v in d['stage_seconds_summed'].items()})" $OUT/streamed_${m}M_$label.json 2>&1 | tail -1
}
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
os.makedirs('$W/m$M', exist_ok=True)
write_big_ply('$W/m$M/synth_${M}000000_sh3.ply', $M * 1000000, 3)" > /dev/null
echo "scene written at $SECONDS s"
one . warm 2 > /dev/null     # kernels compiled once (a 2M scene: one process)
allin() {  # label: the 32M run inside a daemon started by hand, which the calling process joins too
  export CUDA_MPS_PIPE_DIRECTORY=$W/mps_pipe CUDA_MPS_LOG_DIRECTORY=$W/mps_log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  nvidia-cuda-mps-control -d && one . $1 $M --mps off
  echo quit | nvidia-cuda-mps-control; sleep 1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}
one . new_a $M; allin allin_a     # in order of what matters most, should the call be cut short
one . p4_2000 $M --processes 4 --process-gpu-mib 2000
one $BASE base_a $M; one . new_b $M; allin allin_b; one $BASE base_b $M
echo "elapsed $SECONDS s"
one . p5_1600 $M --processes 5 --process-gpu-mib 1600
echo "elapsed $SECONDS s"
timeout 90 python3 bench/launch_sites.py --synthetic 540000 --sh 3 --quality 80 --top 60 2>&1 | grep -v USDT | tail -62
echo "elapsed $SECONDS s"
