#!/usr/bin/env bash
# Session 41's device call (issue 32): writing processes forked from a fork server that imported
# torch once (`process_context`) against spawned ones (exp/base: session 40's tree, carried;
# BASE=path), and the calling process writing a run of its own (`--write-here on`), with no head
# start and with 3M level-0 splats more than each process (`--here-head-millions 3`): 8M SH3
# streamed at 80 (`--processes auto`) base / fork / here 0 / here 3, then 32M here 3 / fork (/
# base with BASE32=1) with every process's device memory sampled, then 8M again; then bench/startup_probe.py
# (three forked processes without warm-up) under py-spy (PYSPY: a carried binary), and the
# single 8M SOG (compress_bench.py) for the issue's 1.5x. `bash bench/gpu_s41a.sh`; about 6
# minutes on an H100, the most telling runs first (the device time may end before the rest).
# Ran once, at e5f5239 (bench/results/session41_gpu); the fork server and the head start it
# measured were taken out after it (neither paid: bench/NOTES.md, session 41), so on later trees
# `.` runs spawned processes and `--here-head-millions` is unknown: check out e5f5239 to rerun it.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s41a
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
BASE=${BASE:-exp/base}
PYSPY=${PYSPY:-.venv/bin/py-spy}
one() {  # tree label millions [streamed_bench options]
  local tree=$1 label=$2 m=$3; shift 3
  (cd $tree && timeout 150 python3 bench/streamed_bench.py --millions $m --sh 3 --quality 80 --work $W/m$m \
    --processes auto "$@" --json $OUT/streamed_${m}M_$label.json > $W/s.txt 2>&1) || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1])" $OUT/streamed_${m}M_$label.json
}
eight() {
  one $BASE base_$1 8 --write-here off; one . fork_$1 8 --write-here off
  one . here0_$1 8 --write-here on --here-head-millions 0; one . here3_$1 8 --write-here on --here-head-millions 3
}
eight a
echo "elapsed $SECONDS s"
apps() {  # every process's device memory, twice a second, while a run goes on
  while true; do nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | tr '\n' ' '; echo; sleep 0.5; done
}
apps > $OUT/apps_32M_here3.txt & mon=$!; one . here3_a 32 --write-here on --here-head-millions 3; kill $mon
apps > $OUT/apps_32M_fork.txt & mon=$!; one . fork_a 32 --write-here off; kill $mon
[ -n "$BASE32" ] && { apps > $OUT/apps_32M_base.txt & mon=$!; one $BASE base_a 32 --write-here off; kill $mon; }
echo "elapsed $SECONDS s"
eight b
echo "elapsed $SECONDS s"
if [ -x "$PYSPY" ]; then
  timeout 60 "$PYSPY" record --subprocesses --idle --threads -r 50 -f raw -o $OUT/spy_probe.txt -- \
    python3 bench/startup_probe.py --processes 3 --no-warm --start forkserver --json $OUT/probe_fork_spy.json \
    > $W/spy.txt 2>&1 || tail -3 $W/spy.txt
  tail -3 $W/spy.txt
fi
echo "elapsed $SECONDS s"
timeout 60 python3 bench/compress_bench.py $W/m8/synth_8000000_sh3.ply --quality 80 --repeat 2 \
  --json $OUT/compress_8M_q80.json 2>&1 | tail -2
echo "elapsed $SECONDS s"
