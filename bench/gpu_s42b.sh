#!/usr/bin/env bash
# Session 42's second device call (issue 32): the writing processes of a streamed SOG under
# CUDA's MPS (one server, every process's kernels able to run at once instead of the device
# time-slicing between their contexts) against without it, on one machine. 8M SH3 streamed at
# 80 with --processes auto (3) without MPS, then a private MPS server (its own pipe folder, so
# only these runs use it; quit on exit) and 8M with 3 and 4 processes, 32M with 3 and 4; then
# 32M without MPS. `bash bench/gpu_s42b.sh`; about 6 minutes.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s42b
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
one() {  # label millions [streamed_bench options]
  local label=$1 m=$2; shift 2
  timeout 150 python3 bench/streamed_bench.py --millions $m --sh 3 --quality 80 --work $W/m$m \
    "$@" --json $OUT/streamed_${m}M_$label.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1], {k: round(v, 1) for k, v in d['stage_seconds_summed'].items()})" $OUT/streamed_${m}M_$label.json
}
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
for m in (8, 32):
    os.makedirs(f'$W/m{m}', exist_ok=True)
    write_big_ply(f'$W/m{m}/synth_{m}000000_sh3.ply', m * 1000000, 3)" > /dev/null
echo "scenes written at $SECONDS s"
one plain3 8 --processes auto
echo "elapsed $SECONDS s"
mps_quit() { echo quit | nvidia-cuda-mps-control; }
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
nvidia-cuda-mps-control -d && trap mps_quit EXIT
one mps3 8 --processes auto
one mps4 8 --processes 4
one mps3b 8 --processes auto
echo "elapsed $SECONDS s"
one mps3 32 --processes auto
one mps4 32 --processes 4
echo "elapsed $SECONDS s"
mps_quit; trap - EXIT
unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
one plain3 32 --processes auto
echo "elapsed $SECONDS s"
tail -5 /tmp/mps_log/control.log 2>/dev/null
