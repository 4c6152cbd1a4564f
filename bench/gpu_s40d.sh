#!/usr/bin/env bash
# Prepared for the next device call (issue 32): the calling process writing a run of its own
# beside the three writing processes (`write_streamed(write_here=True)`, off by default:
# settings.WRITE_HERE_ON_GPU) against the default, alternated on one machine: 8M SH3 streamed at
# 80, then 32M, then 8M again; nvidia-smi's peak each (the 16 GB). About 3 minutes on an
# H100. `bash bench/gpu_s40d.sh`; JSON under $OUT.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s40d
one() {  # on|off label millions
  timeout 120 python3 bench/streamed_bench.py --millions $3 --sh 3 --quality 80 --work $W/m$3 \
    --processes auto --write-here $1 --json $OUT/streamed_$3M_$2.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); t=d['group_timeline']; print(sys.argv[1].split('/')[-1], round(d['seconds_wall'],2), d['processes'], d['output_bytes'], d['gpu_mem_max_mib_nvidia_smi'], 'first', t[0], 'last', t[-1])" $OUT/streamed_$3M_$2.json
}
one on here_a 8; one off default_a 8; one on here_a 32; one off default_a 32; one on here_b 8; one off default_b 8
echo "elapsed $SECONDS s"
