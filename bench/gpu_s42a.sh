#!/usr/bin/env bash
# Session 42's first device call (issue 32): where a streamed write's GPU time goes.
# bench/streamed_kernels.py on a 4M SH3 synthetic scene at 80: streamed (one process) and one
# SOG of the same scene, each a plain run then one under torch's profiler (kernels by device
# time, the device's busy share of the wall). `bash bench/gpu_s42a.sh`; about 3 minutes.
NO_ONE_PLY=1 source bench/gpu_prelude.sh gpu_s42a
which nvidia-cuda-mps-control || true
timeout 240 python3 bench/streamed_kernels.py --millions 4 --sh 3 --work $W --json $OUT/kernels_4M_streamed.json 2>&1 | grep -v USDT
echo "elapsed $SECONDS s"
timeout 150 python3 bench/streamed_kernels.py --millions 4 --sh 3 --work $W --single --json $OUT/kernels_4M_single.json 2>&1 | grep -v USDT
echo "elapsed $SECONDS s"
