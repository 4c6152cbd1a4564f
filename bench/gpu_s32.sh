#!/usr/bin/env bash
# The SH palette's coarse cells kept after the first Lloyd steps (this tree) against the tree
# before (exp/base: `git archive dd3939e sogs_core bench | tar -x -C exp/base`), alternated on one
# GPU: 1M SH3 single files at 80 (5 runs each), then the 32M SH3 streamed SOG at 80 with one
# process, as the CLI writes it. `bash bench/gpu_s32.sh` (carry ["exp/base"]); JSON under $OUT.
source bench/gpu_prelude.sh gpu_s32
for arm in new old new old; do
  if [ "$arm" = old ]; then tree=exp/base; else tree=.; fi
  PYTHONPATH=$tree timeout 120 python3 $tree/bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 \
    --json $OUT/compress_1m_$arm.json > $W/c_$arm.txt 2>&1 || tail -3 $W/c_$arm.txt
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$arm 1M', [round(r['seconds']['total'],3) for r in d['runs']], d['best']['output_bytes'], {k: round(v,3) for k,v in d['best']['seconds'].items()})" $OUT/compress_1m_$arm.json
done
for arm in new old new; do
  if [ "$arm" = old ]; then tree=exp/base; else tree=.; fi
  PYTHONPATH=$tree timeout 200 python3 $tree/bench/streamed_bench.py --millions 32 --sh 3 --processes 1 --quality 80 \
    --work $W/big --json $OUT/streamed_32M_$arm.json > $W/s_$arm.txt 2>&1 || tail -3 $W/s_$arm.txt
  summarize $OUT/streamed_32M_$arm.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(v,1) for k,v in d['stage_seconds_summed'].items()}, 'generate', round(d['seconds_generate'],1))" $OUT/streamed_32M_$arm.json
done
