#!/usr/bin/env bash
# Session 44's first device call (issue 32): where a 32M SH3 streamed write's 22 s go, stamped
# (`bench/phase_probe.py`: each process's start, job, groups and end, the writer's plan, shared
# buckets, close and MPS stop), on this tree (writing processes end with os._exit once done)
# against HEAD before it (exp/head, carried; `git archive` + phase_probe.py copied in), and this
# tree with the calling process's run 1.5x and 2x the others' (SOGS_PROBE_HERE_WEIGHT).
# `bash bench/gpu_s44a.sh` (M=16 for a smaller scene); ~4.5 minutes at 32M.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s44a
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
HEAD_TREE=${HEAD_TREE:-exp/head}
M=${M:-32}
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
os.makedirs('$W/m$M', exist_ok=True)
write_big_ply('$W/m$M/synth_${M}000000_sh3.ply', $M * 1000000, 3)" > /dev/null
echo "scene written at $SECONDS s"
timeout 120 python3 bench/streamed_bench.py --millions 2 --sh 3 --quality 80 --work $W/m2 --json $W/warm.json > /dev/null 2>&1
probe() {  # tree label [weight of the calling process's run]
  (cd $1 && SOGS_PROBE_HERE_WEIGHT=${3:-} timeout 150 python3 bench/phase_probe.py --millions $M --sh 3 --quality 80 \
     --work $W/m$M --processes auto --json $W/p_$2.json > /dev/null 2> $OUT/p_$2.log) || tail -3 $OUT/p_$2.log
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); print(sys.argv[2], round(d['seconds_wall'],2), d['processes'], 'mps', d.get('mps'), d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'util', round(d.get('gpu_utilization', {}).get('mean', -1)))" $W/p_$2.json $2
  grep PROBE $OUT/p_$2.log | grep -v "put groups\|put shared" | cut -c7-
  grep PROBE $OUT/p_$2.log | grep "put groups" | awk '{last[$3]=$2; n[$3]++} END {for (w in last) print "  last groups of", w, last[w], "puts", n[w]}'
}
probe $HEAD_TREE head_a; probe . new_a; probe . w15_a 1.5; probe . w2_a 2; probe . w15_b 1.5; probe . new_b
echo "elapsed $SECONDS s"
