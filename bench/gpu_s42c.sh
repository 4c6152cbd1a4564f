#!/usr/bin/env bash
# Session 42's third device call (issue 32): the writer's own private MPS server (the default
# now, `write_streamed(mps=None)`) against --mps off, alternated on one machine: 8M SH3 streamed
# at 80 (--processes auto): after a warm-up run, 32M once each (vmstat beside), and with two GPU slots a process (MPS), then 8M twice each, then the single 8M SOG for the issue's
# 1.5x. Checks that no MPS daemon is left after the runs. `bash bench/gpu_s42c.sh`; ~5 minutes.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s42c
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
one() {  # label millions [streamed_bench options]
  local label=$1 m=$2; shift 2
  timeout 150 python3 bench/streamed_bench.py --millions $m --sh 3 --quality 80 --work $W/m$m --processes auto \
    "$@" --json $OUT/streamed_${m}M_$label.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], 'mps', d['mps'], d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'util', d.get('gpu_utilization'), 'first', t[0], 'last', t[-1])" $OUT/streamed_${m}M_$label.json
  pgrep -fa nvidia-cuda-mps || true
}
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
for m in (8, 32):
    os.makedirs(f'$W/m{m}', exist_ok=True)
    write_big_ply(f'$W/m{m}/synth_{m}000000_sh3.ply', m * 1000000, 3)" > /dev/null
echo "scenes written at $SECONDS s"
one warm 8 --mps off
vm32() {  # label [options]: the 32M run with the host's CPU use each second beside it
  local label=$1; shift
  vmstat 1 > $W/vmstat_32M_$label.txt & local vm=$!
  one $label 32 "$@"; kill $vm
  awk 'NR>2 {us+=$13; sy+=$14; id+=$15; n++} END {if (n) printf "  cpu user %.0f%% sys %.0f%% idle %.0f%% over %d s\n", us/n, sy/n, id/n, n}' $W/vmstat_32M_$label.txt
}
vm32 mps_a; vm32 off_a --mps off; vm32 slots2 --gpu-slots 2     # two units in the GPU stages of each process
echo "elapsed $SECONDS s"
one mps_a 8; one off_a 8 --mps off; one mps_b 8; one off_b 8 --mps off
echo "elapsed $SECONDS s"
timeout 60 python3 bench/compress_bench.py $W/m8/synth_8000000_sh3.ply --quality 80 --repeat 2 \
  --json $OUT/compress_8M_q80.json 2>&1 | tail -2
echo "elapsed $SECONDS s"
PYSPY=${PYSPY:-.venv/bin/py-spy}
if [ -x "$PYSPY" ]; then     # the 32M write with MPS under py-spy: where each role's time goes
  timeout 150 "$PYSPY" record --subprocesses --idle --threads --nonblocking -r 50 -f raw -o $W/spy_32M_mps.txt -- \
    python3 bench/streamed_bench.py --millions 32 --sh 3 --quality 80 --work $W/m32 --processes auto \
    --json $OUT/streamed_32M_mps_spy.json > $W/spy.txt 2>&1 || tail -3 $W/spy.txt
  python3 bench/spy_summary.py $W/spy_32M_mps.txt --top 25 --json $OUT/spy_32M_mps_summary.json 2>&1 | head -120
fi
echo "elapsed $SECONDS s"
