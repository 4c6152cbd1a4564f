#!/usr/bin/env bash
# Fewer launches a file on a GPU, alternated on one machine against the trees before:
#   exp/base: dd3939e (`git archive dd3939e sogs_core bench | tar -x -C exp/base`)
#   exp/pal:  218ea48, the SH palette's coarse cells kept after the first Lloyd steps
#   .:        both, and the Hilbert keys as one Triton kernel
# 1M SH3 single files at 80 (5 runs each), then the 32M SH3 streamed SOG at 80 with one process,
# as the CLI writes it; between them the kernel launches of one 1M file by call site (bench/launch_sites.py).
# `bash bench/gpu_s32.sh` (carry ["exp/base", "exp/pal"]); JSON under $OUT.
source bench/gpu_prelude.sh gpu_s32
start=$(date +%s)
python3 -c "
import torch, sys; sys.path.insert(0, '.')
from sogs_core.order import curves
c = torch.randint(0, 1 << 21, (2_000_000, 3), device='cuda')
print('hilbert kernel == torch keys:', bool(torch.equal(curves.hilbert_keys(c).cpu(), curves.hilbert_keys(c.cpu()))))"
one() {  # arm tree
  PYTHONPATH=$2 timeout 120 python3 $2/bench/compress_bench.py $W/one.ply --quality 80 --repeat 5 \
    --json $OUT/compress_1m_$1.json > $W/c_$1.txt 2>&1 || tail -3 $W/c_$1.txt
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$1 1M', [round(r['seconds']['total'],3) for r in d['runs']], d['best']['output_bytes'], {k: round(v,3) for k,v in d['best']['seconds'].items()})" $OUT/compress_1m_$1.json
}
big() {  # arm tree round
  PYTHONPATH=$2 timeout 200 python3 $2/bench/streamed_bench.py --millions 32 --sh 3 --processes 1 --quality 80 \
    --work $W/big --json $OUT/streamed_32M_$1_$3.json > $W/s_$1.txt 2>&1 || tail -3 $W/s_$1.txt
  summarize $OUT/streamed_32M_$1_$3.json
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(v,1) for k,v in d['stage_seconds_summed'].items()}, 'generate', round(d['seconds_generate'],1))" $OUT/streamed_32M_$1_$3.json
}
for round in 1 2; do one base exp/base; one pal exp/pal; one both .; done
for arm in both base; do   # exp/base/bench/launch_sites.py: a copy of this tree's
  tree=.; [ $arm = base ] && tree=exp/base
  PYTHONPATH=$tree timeout 90 python3 $tree/bench/launch_sites.py $W/one.ply --top 30 --json $OUT/launch_sites_1m_$arm.json 2>&1 \
    | grep -v USDT | sed "s/^/$arm /"
done
[ -n "$SMALL" ] && exit 0     # SMALL=1: the 1M files and the launch counts only
big both . 1; big base exp/base 1; big pal exp/pal 1
[ $(( $(date +%s) - start )) -lt 330 ] && big base exp/base 2
[ $(( $(date +%s) - start )) -lt 390 ] && big both . 2
echo "elapsed $(( $(date +%s) - start )) s"
