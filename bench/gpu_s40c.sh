#!/usr/bin/env bash
# Session 40's second device call (issue 32): where a writing process's first seconds go
# (bench/startup_probe.py, three processes without the compressor's warm-up; WARM=1: with it too), then
# 8M and 32M SH3 streamed at 80 with `--processes auto`, this tree against an older one in
# exp/base (carried; BASE=path), alternated new / base / new / base (32M: new / base). `bash bench/gpu_s40c.sh`;
# about 6 minutes on an H100; JSON under $OUT.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s40c
BASE=${BASE:-exp/base}
python3 bench/startup_probe.py --processes 3 --no-warm --json $OUT/probe3_nowarm.json 2>&1 | tail -3
[ -n "$WARM" ] && python3 bench/startup_probe.py --processes 3 --json $OUT/probe3_warm.json 2>&1 | tail -3
one() {  # tree label millions
  (cd $1 && timeout 240 python3 bench/streamed_bench.py --millions $3 --sh 3 --quality 80 --work $W/m$3 \
    --processes auto --json $OUT/streamed_$3M_$2.json > $W/s.txt 2>&1) || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1])" $OUT/streamed_$3M_$2.json
}
one . new_a 8; one $BASE base_a 8; one . new_b 8; one $BASE base_b 8
one . new_a 32; one $BASE base_a 32
echo "elapsed $SECONDS s"
