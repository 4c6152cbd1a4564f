"""SHA-256 of every output the command line writes for the shared scenes, to prove a change
byte-identical (a restructuring) or to show exactly which outputs it moved.

    python bench/output_hashes.py --work /tmp/hashes --json before.json --src ../baseline
    python bench/output_hashes.py --work /tmp/hashes --json after.json
    python bench/output_hashes.py --compare before.json after.json

Runs the CLI of the source tree `--src` (default: this checkout) as a subprocess, so two
layouts of the code can be compared with one script: every scene of ../shared/scenes (real,
sog_refs, real_float) compressed to a .sog bundle and decoded back to PLY; the same scene
written as SPZ v2, .splat and .ksplat (modes 0-2) and compressed from each; one SOG folder
output; one streamed SOG (several chunk groups and levels); the settings hashes the backfill
computes; and a synthetic SH3 scene of `--millions` million splats (0 to skip). Derived inputs
are made once per --work folder and reused, so both trees read the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

#: (case name, input path relative to ../shared/scenes)
SHARED_SCENES = (
    ("biker", "real/biker.compressed.ply"),
    ("guitar", "real/guitar.compressed.ply"),
    ("playbot", "sog_refs/playbot_0_0"),
    ("logo_v1", "sog_refs/playcanvas-logo_v1"),
    ("leica_sh3", "real_float/leica-sofort-top8192.ply"),
    ("donut", "real_float/donut-mipsplat.ply"),
)

#: writes guitar's decoded PLY as the formats splat-transform cannot write (tests/format_writers)
DERIVE = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from sogs_core import Splats
from tests.format_writers import ksplat_bytes, splat_bytes, spz_v2_bytes
raw = open(sys.argv[2], "rb").read()
end = raw.index(b"end_header\n") + len(b"end_header\n")
names = [l.split()[-1] for l in raw[:end].decode().splitlines() if l.startswith("property")]
a = np.frombuffer(raw[end:], "<f4").reshape(-1, len(names))
col = {n: a[:, i] for i, n in enumerate(names)}
pick = lambda *ns: np.ascontiguousarray(np.stack([col[n] for n in ns], 1))
rest = [n for n in names if n.startswith("f_rest_")]
s = Splats(pick("x", "y", "z"), pick("rot_0", "rot_1", "rot_2", "rot_3"), pick("scale_0", "scale_1", "scale_2"),
           pick("f_dc_0", "f_dc_1", "f_dc_2"), np.ascontiguousarray(col["opacity"]),
           pick(*rest) if rest else np.zeros((len(a), 0), np.float32))
out = sys.argv[3]
open(out + ".spz", "wb").write(spz_v2_bytes(s))
open(out + ".splat", "wb").write(splat_bytes(s))
for mode in (0, 1, 2):
    open(out + f".m{mode}.ksplat", "wb").write(ksplat_bytes(s, mode))
"""


def sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_entries(path: str) -> dict[str, list]:
    """Entry name -> [hash, bytes] of a .sog bundle: shows which image moved when a bundle does."""
    with zipfile.ZipFile(path) as z:
        return {name: [hashlib.sha256(z.read(name)).hexdigest(), z.getinfo(name).file_size] for name in z.namelist()}


def tree_hashes(folder: str) -> dict[str, str]:
    """Relative path -> hash of every file under `folder`."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = sha(path)
    return dict(sorted(out.items()))


class Runner:
    """Runs the CLI and the backfill of one source tree."""

    def __init__(self, src: str, device: str, work: str) -> None:
        self.src, self.device, self.work = os.path.abspath(src), device, work
        self.cli = "sogs_cli" if os.path.isdir(os.path.join(self.src, "sogs_cli")) else "sogs_core.cli"
        self.env = {**os.environ, "PYTHONPATH": self.src}
        self.seconds: dict[str, float] = {}

    def run(self, label: str, module: str, *args: str) -> str:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=self.work, env=self.env,
                              capture_output=True, text=True)
        self.seconds[label] = round(time.perf_counter() - t0, 2)
        if proc.returncode != 0:
            raise SystemExit(f"{label}: {module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        print(f"  {label:<28} {self.seconds[label]:7.2f} s", file=sys.stderr, flush=True)
        return proc.stdout

    def compress(self, label: str, src: str, out: str, *extra: str) -> str:
        return self.run(label, self.cli, "compress", src, out, "--device", self.device, "-q", *extra)


def derived_inputs(runner: Runner, inputs: str) -> dict[str, str]:
    """guitar as PLY, SPZ v2, .splat and .ksplat modes 0-2 (made once per work folder)."""
    os.makedirs(inputs, exist_ok=True)
    ply = os.path.join(inputs, "guitar.ply")
    stem = os.path.join(inputs, "guitar")
    if not os.path.exists(stem + ".m2.ksplat"):
        runner.run("derive:ply", runner.cli, "decompress", os.path.join(SHARED, "scenes", "real/guitar.compressed.ply"), ply)
        subprocess.run([sys.executable, "-c", DERIVE, runner.src, ply, stem], check=True, env=runner.env)
    return {"guitar_ply": ply, "guitar_spz": stem + ".spz", "guitar_splat": stem + ".splat",
            **{f"guitar_ksplat{m}": stem + f".m{m}.ksplat" for m in (0, 1, 2)}}


def synthetic_input(inputs: str, millions: float) -> str:
    n = int(millions * (1 << 20))
    path = os.path.join(inputs, f"synth_{n}_sh3_seed7.ply")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(SHARED, "bench", "synth_scene.py"), "--n", str(n), "--sh", "3",
                        "--seed", "7", "--out", path], check=True, capture_output=True)
    return path


def collect(args: argparse.Namespace) -> dict:
    global SHARED
    SHARED = os.path.abspath(args.shared)
    work = os.path.abspath(args.work)
    out = os.path.join(work, "out")
    inputs = os.path.join(work, "inputs")
    os.makedirs(out, exist_ok=True)
    runner = Runner(args.src, args.device, work)
    result: dict = {"src": runner.src, "cli": runner.cli, "device": args.device, "inputs": {}, "bundles": {},
                    "entries": {}, "decoded": {}, "folder": {}, "streamed": {}, "settings_hash": {}}
    cases = {name: os.path.join(SHARED, "scenes", rel) for name, rel in SHARED_SCENES}
    cases.update(derived_inputs(runner, inputs))
    if args.millions > 0:
        cases["synthetic_sh3"] = synthetic_input(inputs, args.millions)
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only}
    for name, path in cases.items():
        result["inputs"][name] = tree_hashes(path) if os.path.isdir(path) else sha(path)
        bundle = os.path.join(out, f"{name}.sog")
        runner.compress(f"compress:{name}", path, bundle)
        result["bundles"][name] = sha(bundle)
        result["entries"][name] = bundle_entries(bundle)
        if name == "synthetic_sh3" or args.skip_decode:
            continue
        ply = os.path.join(out, f"{name}.decoded.ply")
        runner.run(f"decompress:{name}", runner.cli, "decompress", path, ply)
        result["decoded"][name] = sha(ply)
    if args.only:
        result["seconds"] = runner.seconds
        return result
    folder = os.path.join(out, "leica_folder") + "/"
    runner.compress("compress:folder", cases["leica_sh3"], folder)
    result["folder"] = tree_hashes(folder)
    streamed = os.path.join(out, "biker_streamed")
    runner.compress("compress:streamed", cases["biker"], os.path.join(streamed, "lod-meta.json"),
                    "--chunk-count", "24", "--chunk-min", "2", "--lod-levels", "3")
    result["streamed"] = tree_hashes(streamed)
    if not args.skip_decode:
        runner.run("decompress:streamed", runner.cli, "decompress", os.path.join(streamed, "lod-meta.json"),
                   os.path.join(out, "streamed_l1.ply"), "--level", "1")
        result["decoded"]["streamed_level1"] = sha(os.path.join(out, "streamed_l1.ply"))
    variants = (("default", ()), ("plas_fast", ("--order", "plas", "--plas", "fast")),
                ("sh1_seed3", ("--sh-bands", "1", "--seed", "3")),
                ("streamed", ("--streamed-above", "1000", "--lod-levels", "3")))
    for label, extra in () if args.skip_settings else variants:
        text = runner.run(f"settings:{label}", "ray_jobs.backfill", "--input", inputs, "--output",
                          os.path.join(out, "bf"), "--dry-run", "--device", args.device, *extra)
        result["settings_hash"][label] = json.loads(text.strip().splitlines()[-1])["settings_hash"]
    result["seconds"] = runner.seconds
    return result


def compare(a_path: str, b_path: str) -> int:
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    differ = 0
    for name in sorted(set(a.get("entries", {})) & set(b.get("entries", {}))):
        ea, eb = a["entries"][name], b["entries"][name]
        for entry in sorted(set(ea) | set(eb)):
            if ea.get(entry) != eb.get(entry):
                sizes = [e[1] if e else None for e in (ea.get(entry), eb.get(entry))]
                print(f"DIFFER entry {name}/{entry}: {sizes[0]} -> {sizes[1]} bytes")
    for section in ("inputs", "bundles", "decoded", "folder", "streamed", "settings_hash"):
        keys = sorted(set(a.get(section, {})) | set(b.get(section, {})))
        for key in keys:
            va, vb = a.get(section, {}).get(key), b.get(section, {}).get(key)
            same = va == vb
            differ += not same
            print(f"{'same  ' if same else 'DIFFER'} {section}/{key}")
    print(f"{differ} differ" if differ else "all identical")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=ROOT, help="source tree whose CLI runs (default: this checkout)")
    ap.add_argument("--work", default=os.path.join(ROOT, ".cache", "output_hashes"),
                    help="folder for derived inputs (kept and reused) and outputs")
    ap.add_argument("--shared", default=SHARED, help="the shared folder with scenes/ and bench/ (default ../shared)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--millions", type=float, default=1.0, help="synthetic SH3 scene size (0: none)")
    ap.add_argument("--only", nargs="+", default=None, metavar="CASE",
                    help="compress only these cases to bundles (e.g. synthetic_sh3), nothing else")
    ap.add_argument("--skip-decode", action="store_true", help="no decompress runs (the decoders run on the CPU anyway)")
    ap.add_argument("--skip-settings", action="store_true", help="no settings hashes (no device in them)")
    ap.add_argument("--json", default=None, help="where to write the hashes (default bench/results/output_hashes.json)")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two results and exit")
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    sys.path.insert(0, HERE)
    from results_io import write_result

    print(write_result(collect(args), args.json, "output_hashes.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
