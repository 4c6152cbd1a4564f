"""Where a benchmark's JSON goes: the path given with --json, else bench/results/NAME.

One helper for every script in bench/ (each wrote the same four lines before)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Callable, Optional

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


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
