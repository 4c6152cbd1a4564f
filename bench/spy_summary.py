"""py-spy's raw samples of a streamed write (`py-spy record --subprocesses --idle --threads -f raw`)
summed by thread role: how much of each role's time waits, and which library functions hold
the rest (inclusive: a function counts once per sample it is on the stack of).

    python bench/spy_summary.py spy.txt [--top 20] [--json out.json]

Roles, from the stack: a writing unit (`run_units`' threads), the palette's side thread, a
WebP encode (the compressor's pool), the plan, the threads that drive and wait for them, the
rest. Waiting: the innermost frame is a lock, queue,
future or sleep.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict

#: innermost functions that mean the thread waits
WAITS = {"wait", "acquire", "_wait_for_tstate_lock", "get", "select", "poll", "sleep", "result", "join",
         "_recv", "_recv_bytes", "recv", "_poll", "accept", "readinto", "wait_for",
         "_worker"}          # a pool's thread with no work: blocked in its queue's get, below Python
ROLE_MARKS = [("unit", ("run_groups", "run_group", "compress_bucket", "_run_here")),
              ("palette", ("fit_palette",)), ("encode", ("encode_webp", "encode_all")),
              ("plan", ("plan_streamed",)), ("driver", ("run_units", "write_streamed", "_run_part"))]
FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def role_of(funcs: list[str]) -> str:
    for role, marks in ROLE_MARKS:
        if any(f in marks for f in funcs):
            return role
    return "other"


def summarize(path: str, top: int) -> dict:
    samples: Counter = Counter()
    waiting: Counter = Counter()
    inclusive: dict[str, Counter] = defaultdict(Counter)
    leaves: dict[str, Counter] = defaultdict(Counter)
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = []
            for part in stack.split(";"):
                m = FRAME.match(part.strip())
                if m:
                    frames.append((m["func"], m["file"]))
            funcs = [fn for fn, _ in frames]
            role = role_of(funcs)
            samples[role] += n
            if frames and frames[-1][0].rpartition(".")[2] in WAITS:
                waiting[role] += n
            seen = set()
            for fn, file in frames:
                if "sogs_core" in file and (fn, file) not in seen:
                    seen.add((fn, file))
                    inclusive[role][f"{fn} ({file.split('sogs_core/')[-1]})"] += n
            if frames:
                fn, file = frames[-1]
                leaves[role][f"{fn} ({file.split('/')[-1]})"] += n
    out = {}
    for role, n in samples.most_common():
        out[role] = {"samples": n, "waiting_share": waiting[role] / n,
                     "inclusive": [(k, v / n) for k, v in inclusive[role].most_common(top)],
                     "leaves": [(k, v / n) for k, v in leaves[role].most_common(top)]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    out = summarize(a.raw, a.top)
    for role, d in out.items():
        print(f"{role}: {d['samples']} samples, waiting {100 * d['waiting_share']:.0f} %")
        for name, share in d["inclusive"]:
            print(f"   {100 * share:5.1f} %  {name}")
        print("   innermost:")
        for name, share in d["leaves"][:10]:
            print(f"   {100 * share:5.1f} %  {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
