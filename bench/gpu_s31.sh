#!/usr/bin/env bash
# The device call session 30 could not make (its budget was spent), from the repository root:
#     git archive a37a093 sogs_core bench | (mkdir -p exp/oldtree && tar -x -C exp/oldtree)
#     bash bench/gpu_s31.sh        (run with carry ["exp/oldtree"]; JSON under $OUT)
# Our WebP encoder with ~4x fewer reads from the device per image (this tree) against the tree
# before (exp/oldtree, a37a093): the 32M SH3 streamed SOG with one process and four, and 1M SH3
# single files at 80, alternated. The files must be the same bytes (the palette fit's known
# run-to-run spread aside).
source bench/gpu_prelude.sh gpu_s31
for arm in new old new old; do
  if [ "$arm" = old ]; then tree=exp/oldtree; else tree=.; fi
  PYTHONPATH=$tree timeout 120 python3 $tree/bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 \
    --json $OUT/compress_1m_$arm.json > $W/c_$arm.txt 2>&1 || tail -3 $W/c_$arm.txt
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$arm 1M best', d.get('best'))" $OUT/compress_1m_$arm.json
done
for p in 1 4; do
  for arm in new old; do
    if [ "$arm" = old ]; then tree=exp/oldtree; else tree=.; fi
    PYTHONPATH=$tree timeout 150 python3 $tree/bench/streamed_bench.py --millions 32 --sh 3 --processes $p \
      --work $W/big --json $OUT/streamed_32M_p${p}_$arm.json > $W/s_${p}_$arm.txt 2>&1 || tail -3 $W/s_${p}_$arm.txt
    summarize $OUT/streamed_32M_p${p}_$arm.json
  done
done
