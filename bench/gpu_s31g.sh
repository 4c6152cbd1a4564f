#!/usr/bin/env bash
# Where the re-chained leaves' GPU time went (bench/NOTES.md, session 31): the 4M SH3 streamed SOG
# at 80, one process, three trees carried in exp/: oldtree (f919877, the Hilbert order), t1
# (fe46d04: every leaf's chunks re-chained, no choice) and t2 (7579f22: re-chained or Hilbert,
# chosen on a sample per file), two rounds (`bash bench/gpu_s31g.sh`, carry the three folders).
source bench/gpu_prelude.sh gpu_s31g
for round in 1 2; do
  for arm in oldtree t1 t2; do
    tree=exp/$arm
    PYTHONPATH=$tree timeout 100 python3 $tree/bench/streamed_bench.py --millions 4 --sh 3 --processes 1 --quality 80 \
      --work $W/big4 --json $OUT/streamed_4M_${arm}_$round.json > $W/s.txt 2>&1 || tail -3 $W/s.txt
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$arm', round(d['seconds_wall'],2), d['output_bytes'], {k: round(v,2) for k,v in d['stage_seconds_summed'].items()})" $OUT/streamed_4M_${arm}_$round.json
  done
done
