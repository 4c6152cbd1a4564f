# The shared start of the session scripts run on a device machine (`source bench/gpu_prelude.sh NAME`
# from the repository root): $OUT (default NAME_out) and $W (default /tmp/NAME), the GPU's name,
# a 1M SH3 PLY at $W/one.ply (not with NO_ONE_PLY=1), and `summarize FILE`, which prints a streamed_bench.py JSON's key figures.
export PYTHONUNBUFFERED=1
OUT=${OUT:-$1_out}; W=${WORK:-/tmp/$1}; mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
summarize() {
  python3 -c "import sys,json; d=json.load(open(sys.argv[1])); print(sys.argv[1].split('/')[-1], {k: d.get(k) for k in ('processes','seconds_wall','output_bytes','peak_gpu_bytes','gpu_mem_max_mib_nvidia_smi','seconds_render','peak_gpu_bytes_render') if k in d})" "$1"
}
[ -n "$NO_ONE_PLY" ] || [ -f "$W/one.ply" ] || timeout 60 python3 -c "
import sys; sys.path.insert(0, 'bench')
from streamed_bench import write_big_ply
write_big_ply('$W/one.ply', 1048576, 3)" > /dev/null
