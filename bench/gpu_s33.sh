#!/usr/bin/env bash
# Device memory of a streamed write before and after the palette search's reference cycle was
# broken (exp/old2: `git archive <commit before> sogs_core bench` plus exp/mem_sites.py), on an
# 8M SH3 scene: the one-process write's peak by phase (exp/mem_sites.py), then two processes'
# nvidia-smi peak (streamed_bench.py), alternated; then `gpu_check.py kmeans`.
# `bash bench/gpu_s33.sh` (carry ["exp/old2", "exp/mem_sites.py"]); JSON under $OUT.
source bench/gpu_prelude.sh gpu_s33
python3 bench/gpu_check.py kmeans 2>&1 | tail -6
P=$W/big/synth_8000000_sh3.ply
[ -f $P ] || timeout 120 python3 bench/streamed_bench.py --millions 8 --sh 3 --work $W/big --quality 80 --json $OUT/warm.json > /dev/null 2>&1
OUT=$(realpath $OUT)
mem() {  # arm dir script (the dir's sogs_core is imported: mem_sites.py puts the working directory first)
  (cd $2 && timeout 100 python3 $3 $P --json $OUT/mem_$1.json > /dev/null 2>&1)
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$1', round(d['wall'],1), d['bytes'], 'peak', round(d['peak_allocated']/2**30,2), 'reserved', round(d['peak_reserved']/2**30,2)); [print('   ', k, v) for k, v in list(d['by_phase_gb'].items())[:4]]; [print('   ', s['tag'], s['top'][:3]) for s in d['snapshots'][:2]]" $OUT/mem_$1.json
}
two() {  # arm tree
  PYTHONPATH=$2 timeout 100 python3 $2/bench/streamed_bench.py --millions 8 --sh 3 --processes 2 --quality 80 --work $W/big \
    --json $OUT/p2_$1.json > /dev/null 2>&1; summarize $OUT/p2_$1.json
}
mem new . exp/mem_sites.py; mem old exp/old2 mem_sites.py; two new .; two old exp/old2
[ $SECONDS -lt 200 ] && { mem new . exp/mem_sites.py; two new .; }
echo "elapsed $SECONDS s"
