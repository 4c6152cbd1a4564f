#!/usr/bin/env bash
# Session 44's second device call (issue 32): the writing processes forked from a process server
# that imported torch early (`pipeline.process_server`) against spawned ones (exp/head, carried:
# `git archive` of the tree before, with phase_probe.py copied in), on 32M SH3 at 80: the
# benchmark (`phase_probe.py`, stamped) alternated, and the CLI end to end (the whole command,
# its own start included) once each. `bash bench/gpu_s44b.sh` (M=16 for a smaller scene).
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s44b
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
HEAD_TREE=${HEAD_TREE:-exp/head}
M=${M:-32}
PLY=$W/m$M/synth_${M}000000_sh3.ply
timeout 200 python3 -c "
import sys, os; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
os.makedirs('$W/m$M', exist_ok=True)
write_big_ply('$PLY', $M * 1000000, 3)" > /dev/null
echo "scene written at $SECONDS s"
timeout 120 python3 bench/streamed_bench.py --millions 1 --sh 3 --quality 80 --work $W/m1 --json $W/warm.json > /dev/null 2>&1
probe() {  # tree label
  (cd $1 && timeout 150 python3 bench/phase_probe.py --millions $M --sh 3 --quality 80 \
     --work $W/m$M --processes auto --json $W/p_$2.json > /dev/null 2> $OUT/p_$2.log) || tail -3 $OUT/p_$2.log
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); print(sys.argv[2], round(d['seconds_wall'],2), 'before', round(d.get('seconds_before_write', -1), 2), d['processes'], 'mps', d.get('mps'), d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'util', round(d.get('gpu_utilization', {}).get('mean', -1)), 'first', d['group_timeline'][0])" $W/p_$2.json $2
  grep PROBE $OUT/p_$2.log | grep "entered\|job received\|put done\|close\|write_streamed ends" | cut -c7- | tr '\n' ';' | cut -c1-900; echo
}
cli() {  # tree label: the whole command, as an artist runs it
  rm -rf $W/cli_$2
  local t=$(date +%s.%N)
  (cd $1 && timeout 150 python3 -m sogs_cli.main compress $PLY $W/cli_$2/lod-meta.json --quality 80 > $W/cli_$2.txt 2>&1) \
    || tail -3 $W/cli_$2.txt
  echo "cli_$2 $(python3 -c "print(round($(date +%s.%N) - $t, 2))") s end to end; $(grep -o 'bytes in [0-9.]*s.*' $W/cli_$2.txt | head -1)"
}
probe $HEAD_TREE head_a; probe . new_a; cli . new; cli $HEAD_TREE head; probe $HEAD_TREE head_b; probe . new_b
echo "elapsed $SECONDS s"
