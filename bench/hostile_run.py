"""A mix of hostile and broken scenes through `compress` and through the backfill: every scene one
row, bounded memory, nothing written outside --output.

    python bench/hostile_run.py [--good 4] [--json out.json]

The files (`tests/hostile_files.py`): a .sog whose means_l.webp inflates to 2 GiB, a SOG folder
whose WebP declares 13,000^2 texels for 10 splats, a .ksplat claiming 2^28-splat buckets, a PLY
with NaN colours and infinite scales, a truncated PLY, random bytes named .ply, an SPZ with data
past its header's count, an SPZ whose header claims 2,000,000,000 splats, beside --good valid
scenes. Each goes through `sogs-cluster compress` in its own process (exit code, the error line,
peak RSS from wait4); then all of them through `python -m ray_jobs.backfill` (local Ray, CPU,
one actor; the driver's peak RSS), whose manifest is read back: rows per scene and their status,
and every file under the work folder outside --output and the inputs (must be none). JSON:
default bench/results/hostile_run.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.results_io import measured, write_result  # noqa: E402


def last_line(text: str) -> str:
    """The last line of `text` that holds anything (a command's error line)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def build(inputs: str, good: int) -> dict[str, str]:
    """The scenes, written under `inputs`; name -> what it is."""
    from sogs_core.formats.ply.write import ply_bytes
    from tests import hostile_files as hf
    from tests.conftest import make_scene

    made = {
        "bomb.sog": (hf.zip_bomb_sog(2 << 30), "a .sog whose means_l.webp inflates to 2 GiB"),
        "huge_bucket.ksplat": (hf.ksplat_huge_bucket(), "a .ksplat claiming buckets of 2^28 splats"),
        "nan.ply": (hf.nan_ply(), "NaN colours and infinite scales"),
        "truncated.ply": (hf.truncated_ply(), "a PLY cut 3,000 bytes short"),
        "random.ply": (os.urandom(200_000), "random bytes named .ply"),
        "leftover.spz": (hf.spz_with_leftover(), "an SPZ with 1 MB past its header's count"),
        "two_billion.spz": (hf.spz_claiming(), "an SPZ whose header claims 2,000,000,000 splats"),
    }
    for i in range(good):
        made[f"good_{i}.ply"] = (ply_bytes(make_scene(3000 + 100 * i, 1, seed=50 + i)), "a valid scene")
    what = {}
    for name, (data, desc) in made.items():
        with open(os.path.join(inputs, name), "wb") as f:
            f.write(data)
        what[name] = desc
    hf.wide_webp_folder(os.path.join(inputs, "wide"), side=13_000)
    what["wide/meta.json"] = "a SOG folder whose scales.webp declares 13,000 x 13,000 texels for 10 splats"
    return what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--good", type=int, default=4)
    ap.add_argument("--json", default=None)
    ap.add_argument("--build-only", default=None, metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.build_only:                  # in its own process: the 2 GiB bomb is built there, not here,
        print(json.dumps(build(a.build_only, a.good)))      # where every child would inherit its pages
        return
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as work:
        inputs, out = os.path.join(work, "in"), os.path.join(work, "out")
        os.makedirs(inputs)
        what = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), "--good", str(a.good),
                                          "--build-only", inputs], capture_output=True, text=True, env=env,
                                         check=True).stdout)
        before = {os.path.join(b, f) for b, _, fs in os.walk(work) for f in fs}
        singles = []
        for name, desc in what.items():
            path = os.path.join(inputs, name)
            if name.endswith("meta.json"):
                path = os.path.dirname(path)
            r = measured([sys.executable, "-m", "sogs_cli.main", "compress", "-q", "--device", "cpu", path,
                          os.path.join(work, "single", name.replace("/", "_") + ".sog")], env)
            code, line, rss, secs = r["exit"], last_line(r["stderr_tail"]), r["peak_rss_mb"], r["seconds"]
            singles.append({"scene": name, "what": desc, "exit": code, "message": line[:300],
                            "peak_rss_mb": round(rss, 1), "seconds": round(secs, 2)})
            print(f"compress {name:<20} exit {code} peak {rss:7.1f} MB  {line[:140]}", flush=True)
        r = measured([sys.executable, "-m", "ray_jobs.backfill", "--input", inputs, "--output", out, "--device", "cpu",
                      "--actors", "1", "--no-report"], env)
        code, driver_rss, secs = r["exit"], r["peak_rss_mb"], r["seconds"]
        from ray_jobs.manifest import read_manifest
        from ray_jobs.storage import Store

        table = read_manifest(Store(), os.path.join(out, "_manifest"))
        rows = table.to_pylist() if table is not None else []
        per_scene: dict[str, list] = {}
        for r in rows:
            per_scene.setdefault(os.path.relpath(r["input_uri"], inputs), []).append(
                {"status": r["status"], "error_class": r["error_class"], "message": (r["error_message"] or "")[:200]})
        after = {os.path.join(b, f) for b, _, fs in os.walk(work) for f in fs}
        single_dir = os.path.join(work, "single")
        outside = sorted(p for p in after - before
                         if not p.startswith(out + os.sep) and not p.startswith(single_dir + os.sep))
        for scene, rs in sorted(per_scene.items()):
            print(f"backfill {scene:<20} rows {len(rs)}  {rs[0]['status']:<7} {rs[0]['error_class'] or ''}", flush=True)
        print(f"backfill exit {code}, driver peak {driver_rss:.0f} MB, {secs:.0f} s; scenes without exactly one row: "
              f"{sorted(set(what) - {s for s, rs in per_scene.items() if len(rs) == 1})}; written outside "
              f"--output: {outside or 'none'}", flush=True)
        write_result({"host": platform.node(), "compress": singles,
                      "backfill": {"exit": code, "driver_peak_rss_mb": round(driver_rss, 1), "seconds": round(secs, 1),
                                   "rows": per_scene, "scenes": len(what), "written_outside_output": outside}},
                     a.json, "hostile_run.json")


if __name__ == "__main__":
    main()
