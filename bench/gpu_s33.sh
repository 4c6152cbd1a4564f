#!/usr/bin/env bash
# Device memory of a streamed write before and after the palette search's reference cycle was
# broken (exp/old2: `git archive af88e2d sogs_core bench | tar -x -C exp/old2`, then
# `cp bench/streamed_memory.py exp/old2/bench/`), on an 8M SH3 scene: `gpu_check.py kmeans`, the
# one-process write's peak by phase (bench/streamed_memory.py), then two processes' nvidia-smi
# peak (streamed_bench.py), alternated. `bash bench/gpu_s33.sh` (carry ["exp/old2"]); JSON under $OUT.
# (Session 33 ran it with the same sampler as exp/mem_sites.py, before it became streamed_memory.py.)
source bench/gpu_prelude.sh gpu_s33
python3 bench/gpu_check.py kmeans 2>&1 | tail -6
P=$W/big/synth_8000000_sh3.ply
[ -f $P ] || timeout 120 python3 bench/streamed_bench.py --millions 8 --sh 3 --work $W/big --quality 80 --json $OUT/warm.json > /dev/null 2>&1
mem() {  # arm tree
  PYTHONPATH=$2 timeout 100 python3 $2/bench/streamed_memory.py $P --json $OUT/mem_$1.json 2>&1 | sed "s/^/$1 /" | head -12
}
two() {  # arm tree
  PYTHONPATH=$2 timeout 100 python3 $2/bench/streamed_bench.py --millions 8 --sh 3 --processes 2 --quality 80 --work $W/big \
    --json $OUT/p2_$1.json > /dev/null 2>&1; summarize $OUT/p2_$1.json
}
mem new .; mem old exp/old2; two new .; two old exp/old2
[ $SECONDS -lt 200 ] && { mem new .; two new .; }
echo "elapsed $SECONDS s"
