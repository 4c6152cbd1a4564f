#!/usr/bin/env bash
# Session 41's device call (issue 32): writing processes forked from a fork server that imported
# torch once (`process_context`) against spawned ones, and the calling process writing a run of
# its own (`--write-here on`). First bench/startup_probe.py, three processes without warm-up,
# forked on a fresh machine (Triton's and CuPy's kernel caches empty), then spawned and forked again (py-spy over the forked probe when PYSPY names a carried binary), then 8M
# and 32M SH3 streamed at 80 with `--processes auto`: exp/base (carried; BASE=path; spawned, as
# session 40) / this tree / this tree writing here, alternated; then the single 8M SOG
# (compress_bench.py) for the issue's 1.5x. `bash bench/gpu_s41a.sh`; about 8 minutes on an H100.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s41a
BASE=${BASE:-exp/base}
PYSPY=${PYSPY:-.venv/bin/py-spy}
python3 bench/startup_probe.py --processes 3 --no-warm --start forkserver --json $OUT/probe_fork_cold.json 2>&1 | tail -3
python3 bench/startup_probe.py --processes 3 --no-warm --start spawn --json $OUT/probe_spawn.json 2>&1 | tail -3
python3 bench/startup_probe.py --processes 3 --no-warm --start forkserver --json $OUT/probe_fork.json 2>&1 | tail -3
if [ -x "$PYSPY" ]; then
  timeout 60 "$PYSPY" record --subprocesses --idle --threads -r 50 -f raw -o $OUT/spy_probe.txt -- \
    python3 bench/startup_probe.py --processes 3 --no-warm --start forkserver > $W/spy.txt 2>&1 || tail -3 $W/spy.txt
fi
echo "elapsed $SECONDS s"
one() {  # tree label millions here(on|off)
  (cd $1 && timeout 150 python3 bench/streamed_bench.py --millions $3 --sh 3 --quality 80 --work $W/m$3 \
    --processes auto --write-here $4 --json $OUT/streamed_$3M_$2.json > $W/s.txt 2>&1) || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1])" $OUT/streamed_$3M_$2.json
}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
one $BASE base_a 8 off; one . fork_a 8 off; one . here_a 8 on
one $BASE base_b 8 off; one . fork_b 8 off; one . here_b 8 on
echo "elapsed $SECONDS s"
one $BASE base_a 32 off; one . fork_a 32 off; one . here_a 32 on
echo "elapsed $SECONDS s"
timeout 60 python3 bench/compress_bench.py $W/m8/synth_8000000_sh3.ply --quality 80 --repeat 2 \
  --json $OUT/compress_8M_q80.json 2>&1 | tail -2
echo "elapsed $SECONDS s"
