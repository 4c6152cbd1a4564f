"""Helpers every script in bench/ shares: where a benchmark's JSON goes (the path given with
--json, else bench/results/NAME), the one-scene arguments, the peer's binary and a timed command."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Callable, Optional

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
#: the peer the benchmarks compare with: splat-transform 3.10.2, installed into .cache/ by
#: `npm install --prefix .cache/splat-transform-3.10.2 @playcanvas/splat-transform@3.10.2`
SPLAT_TRANSFORM = os.path.join(os.path.dirname(RESULTS), "..", ".cache", "splat-transform-3.10.2", "node_modules",
                               ".bin", "splat-transform")


#: a process this small measures its child alone (a child's peak RSS counts the pages of whoever
#: forked it, so the benchmark's own process must not be the parent)
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
            "err = p.stderr.read()\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "sys.stderr.write(err[-3000:])\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)\n")


def measured(cmd: list[str], env: dict) -> dict:
    """A command run to its end: exit code, peak RSS (MB), wall seconds, the end of its stderr."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, env=env)
    code, mb = out.stdout.split()[-2:]
    return {"exit": int(code), "peak_rss_mb": round(float(mb), 1), "seconds": round(time.perf_counter() - t0, 2),
            "stderr_tail": out.stderr[-600:]}


def timed(cmd: list[str]) -> float:
    """Wall seconds of a command run to its end; a failure stops the benchmark with its output."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0


def write_result(result: dict, path: Optional[str], default_name: str) -> str:
    """Write `result` as indented JSON to `path` (or bench/results/default_name); returns the path."""
    path = path or os.path.join(RESULTS, default_name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return path


def scene_arguments(doc: str, repeat: int = 3,
                    extra: Optional[Callable[[argparse.ArgumentParser], None]] = None) -> argparse.Namespace:
    """The arguments of the one-scene benchmarks: ply, --device, --repeat, --json, and what
    `extra` adds to the parser."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--json", default=None)
    if extra is not None:
        extra(ap)
    return ap.parse_args()
