"""Backfill driver: every splat scene under a prefix -> SOG, on Ray actors, with a Parquet manifest.

    python -m ray_jobs.backfill --input s3://bucket/scenes/ --output s3://bucket/sog/
    python -m ray_jobs.backfill --input ./scenes/ --output ./out/          # local Ray, local disk

Lists the inputs (PLY, compressed PLY, SPZ, .splat, .ksplat, .sog bundles and SOG folders: a
folder's meta.json is the unit), skips scenes already done with the same input ETag and settings (resume),
starts one actor per GPU (or CPU actors when the cluster has no GPU), keeps two scenes in flight
per actor, writes outputs whole-or-nothing and a manifest row per scene as it finishes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import uuid
from typing import Callable, Optional

from sogs_cli.options import (PLAS_AUTO_BACKFILL, add_compress_options, add_edit_options, add_scene_cap_option,
                              add_streamed_options, compress_settings,
                              memory_budget, streamed_settings)
from sogs_core.formats import FORMAT_NAMES, format_of_name
from sogs_core.formats.names import unsafe_relative_name
from sogs_core.settings import GROUPS_PER_DECIMATION_CUDA, CompressSettings

from ray_jobs.leases import Leases
from ray_jobs.manifest import (ManifestWriter, OtherRunsView, SettledRows, SkippedRows, failed_task_row, mark_below_min,
                               read_manifest, skipped_row)
from ray_jobs.storage import ObjectInfo, Store, is_s3, join


def log(msg: str) -> None:
    print(f"[backfill] {msg}", file=sys.stderr, flush=True)


class BackfillParser(argparse.ArgumentParser):
    """The options, and the rules between them that argparse cannot say (checked on every parse,
    so that `build_parser().parse_args(...)` refuses what the command line refuses)."""

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        if getattr(ns, "min_psnr", None) is not None and getattr(ns, "render_metric", None) is False:
            self.error("--min-psnr needs the render metric: with --no-render-metric no scene has a render_psnr "
                       "to hold against it")
        return ns, rest


def build_parser() -> argparse.ArgumentParser:
    p = BackfillParser(
        prog="python -m ray_jobs.backfill",
        description="Compress every splat scene under --input (the --formats: PLY and compressed PLY, .spz, .splat, "
                    ".ksplat, .sog bundles and SOG v1/v2 folders, whose meta.json is the unit) to SOG under --output "
                    "on a Ray cluster, "
                    "recording one Parquet manifest row per scene. Re-running skips scenes already "
                    "done with the same input ETag and settings (and inputs that failed as bad "
                    "input and have not changed since); --force redoes everything. With no RAY_ADDRESS it starts a "
                    "local Ray; on a cluster without GPUs it compresses on CPU actors.",
        epilog="Exit status: 1 when scenes were to be done and none is ok (done now or skipped as "
               "already done), or with --fail-on-error when any failed; 2 on bad arguments or a "
               "missing input folder; 0 otherwise. Failed scenes are rows in the manifest either way.")
    p.add_argument("--input", required=True, help="s3://bucket/prefix/ or a local folder of scenes")
    p.add_argument("--output", required=True, help="s3://bucket/prefix/ or a local folder for the SOG outputs")
    p.add_argument("--manifest", default=None,
                   help="where the Parquet manifest parts go (default: OUTPUT/_manifest/)")
    p.add_argument("--formats", default=",".join(FORMAT_NAMES), type=_formats,
                   help="comma-separated input formats to list (default: all): ply (also compressed PLY), spz, "
                        "splat, ksplat, sog (.sog bundles and SOG folders' meta.json, v2 or legacy v1: a bucket of v1 "
                        "folders is upgraded to v2)")
    p.add_argument("--layout", choices=["bundle", "folder"], default="bundle",
                   help="bundle: a/b/scene.spz -> a/b/scene.sog (default); folder: -> a/b/scene/meta.json + WebP. "
                        "A SOG folder a/b/scene/meta.json maps to a/b/scene.sog or a/b/scene/")
    p.add_argument("--actors", default="auto",
                   help="number of compressor actors, or 'auto' (default): one per --gpus-per-actor of the "
                        "cluster's GPUs; with no GPU, one per two CPUs")
    p.add_argument("--gpus-per-actor", type=float, default=1.0,
                   help="GPU share of each actor (default 1; fractions such as 0.5 pack two actors per GPU)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="retries of a scene after a transient error or a dead actor (default 2); bad input is not retried")
    p.add_argument("--limit", type=int, default=None, help="process at most this many scenes (after filtering)")
    p.add_argument("--include", action="append", default=None, metavar="GLOB",
                   help="only inputs whose path relative to --input matches (repeatable)")
    p.add_argument("--exclude", action="append", default=None, metavar="GLOB", help="skip matching inputs (repeatable)")
    p.add_argument("--force", action="store_true", help="redo scenes even when a matching output exists")
    p.add_argument("--dry-run", action="store_true", help="list what would be done and skipped; start nothing")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 if any scene failed")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="compressor device inside the actors (default auto: CUDA when the actor sees a GPU)")
    add_compress_options(p, PLAS_AUTO_BACKFILL, hashed=True)
    add_edit_options(p.add_argument_group("edits before compression (not with --streamed-above)"), hashed=True)
    add_scene_cap_option(p)
    p.add_argument("--scene-timeout", default="auto", type=_timeout,
                   help="seconds one scene may take before it is failed and its actor restarted; auto (default) = "
                        "600 s + 10 s per MB of input")
    p.add_argument("--s3-retry-seconds", type=float, default=120.0,
                   help="how long S3 requests are retried through an outage (exponential backoff 0.5 s doubling to a "
                        "16 s cap, with jitter) before the scene fails (default 120)")
    p.add_argument("--lease-seconds", type=float, default=90.0,
                   help="each scene in work holds a lease beside its output, renewed while it runs; another run "
                        "waits for it, and a dead run's lease is taken over after this long (default 90)")
    p.add_argument("--render-metric", action=argparse.BooleanOptionalAction, default=None,
                   help="render the input and the output of every scene with our rasterizer from the same cameras "
                        "and record PSNR/SSIM in the manifest (render_psnr, render_ssim, render_psnr_worst_view; "
                        "the time as seconds_render). Default: on where the actors have GPUs (8 views at 512x512, "
                        "a few percent of a scene's time and about 2.5 GB more GPU memory per actor at 1M SH3), off on CPU actors, where it would cost 4 views at "
                        "128x128, 0.6-1.1 s for a 150k-splat scene on 2 cores, about half a compression; "
                        "--render-metric turns it on there too, --no-render-metric off everywhere. --min-psnr "
                        "turns it on everywhere. Not part of the settings hash (it changes no byte of the "
                        "output), so scenes already done are skipped: add --force to measure them. A streamed "
                        "scene's level 0 is scored against its input when the input is read whole (below "
                        "--memory-budget); read by ranges, its render columns stay null")
    p.add_argument("--min-psnr", type=_psnr, default=None, metavar="DB",
                   help="turns the render metric on for every actor (refused with --no-render-metric): an ok "
                        "scene whose render_psnr is below DB gets "
                        "render_below_min = true in its manifest row (false at or above, null without the "
                        "metric), is counted in the run summary (below_min_psnr) and logged in one line with its "
                        "PSNR. A re-run treats such rows as done like any ok row (they are valid outputs); to "
                        "redo them, run with --force --include on those paths; the report lists them")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write an HTML report of the run beside the manifest at the end and print its path "
                        "(default on; sogs-cluster report MANIFEST makes one later, e.g. after an interrupted run)")
    g = p.add_argument_group("streamed SOG for huge scenes")
    g.add_argument("--streamed-above", type=int, default=None, metavar="SPLATS",
                   help="PLY inputs with more splats than this (read from the header) become a streamed SOG, "
                        "a/b/x.ply -> a/b/x/lod-meta.json + its SOG folders, the chunk groups spread "
                        "over every actor; one manifest row per scene (default: off; the lod settings join the "
                        "settings hash when it is on)")
    add_streamed_options(g)
    g.add_argument("--groups-per-call", type=int, default=None, metavar="N",
                   help="chunk groups an actor takes in one call, their coarser levels made by one decimation "
                        f"call (default: {GROUPS_PER_DECIMATION_CUDA} for actors on a GPU, where a batch costs little "
                        "more than one group, 1 on a CPU); fewer once the groups left would not give every actor "
                        "a share. Changes no byte of the output")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a new local Ray)")
    return p


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown format(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {','.join(FORMAT_NAMES)}")
    return names


def _psnr(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"--min-psnr must be a number of dB, not {text!r}")
    return value


def _timeout(text: str) -> str:
    if text == "auto":
        return text
    try:
        if float(text) > 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--scene-timeout must be 'auto' or seconds > 0, not {text!r}")


def output_uri(output: str, rel: str, layout: str, input_name: str = "scene") -> str:
    """a/b/x.spz -> a/b/x.sog (the last extension replaced; a/b/x.compressed.ply -> a/b/x.compressed.sog),
    a SOG folder a/b/x/meta.json -> a/b/x.sog; with the folder layout a/b/x/ instead."""
    if rel.rsplit("/", 1)[-1].lower() == "meta.json":
        stem = rel.rsplit("/", 1)[0] if "/" in rel else input_name
    else:
        head, _, last = rel.rpartition("/")
        base = last.rsplit(".", 1)[0] if "." in last else last
        stem = f"{head}/{base}" if head else base
    return join(output, stem + ".sog") if layout == "bundle" else join(output, stem) + "/"


class OutputCollision(Exception):
    """Two inputs (say x.ply and x.spz) map to one output, or an output would overwrite its input:
    the later input gets this as a failed row instead of overwriting."""


def _inside(uri: str, prefix: str) -> bool:
    """Whether uri lies under prefix (both local paths or both s3:// URIs)."""
    if is_s3(uri) != is_s3(prefix):
        return False
    if not is_s3(uri):
        uri, prefix = os.path.abspath(uri), os.path.abspath(prefix)
    return uri.rstrip("/").startswith(prefix.rstrip("/") + "/")


def done_marker(uri: str, layout: str) -> str:
    """The object whose presence means the output is complete (a streamed SOG's output is its
    lod-meta.json, written last)."""
    if layout == "bundle" or uri.endswith("/lod-meta.json"):
        return uri
    return uri.rstrip("/") + "/meta.json"


def lod_settings(args: argparse.Namespace) -> dict:
    """The streamed-SOG settings the actors get (levels and chunk cut)."""
    return streamed_settings(args).as_dict()


def ply_splat_count(store: Store, uri: str) -> Optional[int]:
    """The vertex count in a PLY's header (one small read), None when it cannot be told."""
    from sogs_core.model.errors import SogsError
    from sogs_core.formats.ply.header import parse_header

    try:
        header = parse_header(memoryview(store.head(uri, 1 << 16)), uri)
    except (SogsError, OSError):
        return None                       # the actor's read will name what is wrong
    return next((count for name, count, _ in header.elements if name == "vertex"), None)


def plas_on_gpu(args: argparse.Namespace) -> bool:
    """Whether --plas auto means the full schedule: decided without connecting to Ray, so that the
    settings hash (and so what is skipped) is known before any actor starts."""
    if args.device == "cpu":
        return False
    if args.device == "cuda" or args.address or os.environ.get("RAY_ADDRESS"):
        return True                        # a cluster: its actors are meant to have GPUs
    import torch

    return torch.cuda.is_available()       # a local Ray sees this machine's GPUs


def run_settings(args: argparse.Namespace) -> CompressSettings:
    """The `CompressSettings` every actor of this run compresses with (and the settings hash covers)."""
    return compress_settings(args, plas_on_gpu(args))


def settings_hash(args: argparse.Namespace) -> str:
    digest = run_settings(args).digest()
    if args.streamed_above is not None:
        import hashlib

        lod = hashlib.sha256(json.dumps(lod_settings(args), sort_keys=True).encode()).hexdigest()[:8]
        return f"{digest}-{args.layout}-lod{lod}"
    return f"{digest}-{args.layout}"


def still_settled(prev: Optional[dict], etag: str, out: str, shash: str, exists: Callable[[str], bool],
                  layout: str) -> bool:
    """Whether a settled row covers the scene now: same input ETag and settings, and for an `ok`
    row its output still there (`exists`; a bad-input row stands until the input changes)."""
    if prev is None or prev["input_etag"] != etag or prev["settings_hash"] != shash:
        return False
    return prev["status"] != "ok" or (prev["output_uri"] == out and exists(done_marker(out, layout)))


#: past this many settled scenes the plan lists an S3 output prefix once instead of asking for each
#: output (one HEAD each: a million take hours; a listing of a million keys, minutes). A local
#: output is not listed (a stat per file is cheaper than a listing that stats them all) unless
#: LIST_LOCAL_OUTPUTS says so (the tests)
LIST_OUTPUTS_ABOVE = 1000
LIST_LOCAL_OUTPUTS = False


def output_checker(store: Store, output: str, settled: int) -> Callable[[str], bool]:
    """`exists` for the plan's outputs: `store.exists`, or for an S3 output with more than
    LIST_OUTPUTS_ABOVE settled scenes, membership in one listing of `output`."""
    if settled <= LIST_OUTPUTS_ABOVE or not (is_s3(output) or LIST_LOCAL_OUTPUTS):
        return store.exists
    base = output.rstrip("/") + "/"
    present = {o.rel for o in store.list_all(output) if o.problem is None}

    def exists(uri: str) -> bool:
        return uri[len(base):] in present if uri.startswith(base) else store.exists(uri)

    return exists


def plan(store: Store, args: argparse.Namespace, shash: str, run_id: str) -> tuple[list[dict], SkippedRows, int]:
    """(tasks to run, the skipped scenes (their rows made a batch at a time), number listed)."""
    formats = set(args.formats)
    objs: list[ObjectInfo] = [
        o for o in store.list(args.input, accept=lambda rel: rel.endswith("/") or format_of_name(rel) in formats,
                              include=args.include, exclude=args.exclude)
        # outputs and the manifest, when they live under the input prefix, are not inputs
        if not _inside(o.uri, args.output) and not _inside(o.uri, args.manifest)]
    listed = len(objs)
    if args.limit is not None:
        objs = objs[: args.limit]
    done = SettledRows(None if args.force else read_manifest(store, args.manifest, worked_only=True))
    exists = output_checker(store, args.output, len(done.latest))
    tasks, skipped, claimed = [], [], {}
    input_name = args.input.rstrip("/").rsplit("/", 1)[-1] or "scene"
    for o in objs:
        unsafe = unsafe_relative_name(o.rel)
        if unsafe is not None:             # an S3 key such as scenes/../../x.ply: no output path at all
            tasks.append({"input_uri": o.uri, "rel": o.rel, "size": o.size, "etag": o.etag, "output_uri": None,
                          "format": format_of_name(o.rel), "error_class": "UnsafeName",
                          "error": f"its key {unsafe}, which would place its output outside --output; rename it"})
            continue
        out = output_uri(args.output, o.rel, args.layout, input_name)
        fmt = format_of_name(o.rel)
        streamed = (args.streamed_above is not None and fmt == "ply" and o.problem is None
                    and (ply_splat_count(store, o.uri) or 0) > args.streamed_above)
        if streamed:
            out = output_uri(args.output, o.rel, "folder", input_name) + "lod-meta.json"
        if o.problem is not None:          # a symlink loop, a dangling link, a named pipe...
            tasks.append({"input_uri": o.uri, "rel": o.rel, "size": 0, "etag": "", "output_uri": None,
                          "format": fmt, "error": o.problem, "error_class": "UnreadableInput"})
            continue
        clash = claimed.get(out)
        if clash is None and (out.rstrip("/") == o.uri or (fmt == "sog" and _inside(o.uri, out))):
            clash = "itself (the output would overwrite the input; use another --output)"
        if clash is not None:
            tasks.append({"input_uri": o.uri, "rel": o.rel, "size": o.size, "etag": o.etag, "output_uri": out,
                          "format": fmt, "error_class": "OutputCollision",
                          "error": f"its output {out} is also the output of {clash}; rename one "
                                   "or narrow --formats / --include"})
            continue
        claimed[out] = o.uri
        prev = done.get(o.uri)
        if still_settled(prev, o.etag, out, shash, exists, args.layout):
            skipped.append(prev["index"])
            continue
        # `judged`: when the settled row this plan read and chose to redo finished (None: it read
        # none); any row another run settles later than that is new to the plan
        tasks.append({"input_uri": o.uri, "rel": o.rel, "size": o.size, "etag": o.etag, "output_uri": out,
                      "format": fmt, "streamed": streamed, "judged": None if prev is None else prev["finished_at"]})
    return tasks, SkippedRows(done, skipped), listed


def connect_ray(address: Optional[str]):
    import ray

    if ray.is_initialized():
        return ray
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr:
        ray.init(address=addr, logging_level="WARNING", log_to_driver=True)
    else:
        log("no RAY_ADDRESS: starting a local Ray on this machine")
        ray.init(logging_level="WARNING", include_dashboard=False)
    return ray


def render_metric_setting(args: argparse.Namespace) -> Optional[bool]:
    """What the actors are told about the render metric: --render-metric / --no-render-metric as
    given, on everywhere with --min-psnr, else None: each actor turns it on where its device is a
    GPU (`SceneCompressor`), where it costs a few percent of a scene."""
    if args.render_metric is not None:
        return args.render_metric
    return True if args.min_psnr is not None else None


def pool_shape(ray, args: argparse.Namespace, n_tasks: int) -> tuple[int, dict, str]:
    """(number of actors, ray resource options, description)."""
    res = ray.cluster_resources()
    gpus, cpus = res.get("GPU", 0.0), res.get("CPU", 1.0)
    if gpus > 0 and args.device != "cpu":
        per = args.gpus_per_actor
        n = int(gpus // per) if args.actors == "auto" else int(args.actors)
        opts = {"num_gpus": per, "num_cpus": 1}
        desc = f"{n} GPU actor(s), {per:g} GPU each, cluster has {gpus:g} GPU(s)"
    else:
        n = max(1, int(cpus // 2)) if args.actors == "auto" else int(args.actors)
        opts = {"num_gpus": 0, "num_cpus": 1}
        desc = f"{n} CPU actor(s): " + ("--device cpu" if args.device == "cpu" else
                                         f"the Ray cluster has no GPU ({cpus:g} CPUs); compressing on CPU, slowly")
        from sogs_core.settings import PlasConfig

        settings = run_settings(args)
        if settings.order == "plas" and settings.plas != PlasConfig.fast():
            desc += "; --plas fast would sort with a shorter schedule"
    n = max(1, min(n, n_tasks))
    return n, opts, desc


class PlannedFailure(Exception):
    """A scene failed before any actor saw it (an unreadable listing entry, an output collision);
    the row's error_class says which."""


def run(args: argparse.Namespace) -> dict:
    if args.manifest is None:
        args.manifest = join(args.output, "_manifest")
    if not is_s3(args.input) and not os.path.isdir(args.input):
        raise FileNotFoundError(f"input folder {args.input} does not exist")
    store = Store(retry_seconds=args.s3_retry_seconds)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    shash = settings_hash(args)
    planned_at = dt.datetime.now(dt.timezone.utc)
    tasks, skipped, listed = plan(store, args, shash, run_id)
    log(f"run {run_id}: {listed} scene(s) ({','.join(args.formats)}) under {args.input}; {len(tasks)} to do, "
        f"{len(skipped)} already done")
    planned = [t for t in tasks if "error" in t]
    tasks = [t for t in tasks if "error" not in t]
    summary = {"run_id": run_id, "listed": listed, "todo": len(tasks) + len(planned), "ok": 0,
               "failed": len(planned), "skipped": len(skipped), "manifest": args.manifest, "settings_hash": shash}
    if args.min_psnr is not None:
        summary["below_min_psnr"] = 0
    if args.dry_run:
        for t in tasks:
            print(f"do    {t['input_uri']} -> {t['output_uri']}" + (" (streamed)" if t.get("streamed") else ""))
        for t in planned:
            print(f"fail  {t['input_uri']}: {t['error']}")
        for batch in skipped.batches(run_id):
            for r in batch:
                why = f"known bad input: {r['error_message']}" if r["error_class"] else "already done"
                print(f"skip  {r['input_uri']} ({why})")
        return summary
    for where in dict.fromkeys((args.output, args.manifest)):
        problem = store.check_writable(where, run_id)
        if problem is not None:
            raise NotWritable(problem)
    writer = ManifestWriter(store, args.manifest, run_id, log=log, on_row=psnr_floor(args.min_psnr, summary))
    for batch in skipped.batches(run_id):
        writer.add_part(batch)
    for t in planned:
        log(f"failed {t['rel']}: {t['error']}")
        writer.add(failed_task_row(t, run_id, shash, PlannedFailure(t["error"]), attempts=0,
                                   error_class=t["error_class"]))
    leases = Leases(store, run_id, ttl=args.lease_seconds)
    try:
        if tasks:
            _run_tasks(args, tasks, writer, leases, store, summary, run_id, shash, planned_at)
    finally:
        leases.release_all()
        lost = writer.close()
        summary["manifest_parts"] = writer.written
        if args.report and not lost:
            try:
                from ray_jobs.report import write_report

                summary["report"] = write_report(store, args.manifest, run=run_id)
                log(f"report: {summary['report']}")
            except Exception as exc:           # a report is a convenience: never fail the run for it
                log(f"no report: {type(exc).__name__}: {exc}")
        if lost:
            summary["unwritten_rows"] = len(lost)
            log(f"error: {len(lost)} manifest row(s) could not be written to {args.manifest}; they follow as JSON")
            for row in lost:
                print(json.dumps(row, default=str), file=sys.stderr)
    return summary


def psnr_floor(min_psnr: Optional[float], summary: dict) -> Optional[Callable[[dict], None]]:
    """--min-psnr, applied to each row as the manifest writer gets it: an ok row of this run with
    a render_psnr gets render_below_min; one below is counted (summary["below_min_psnr"]) and
    logged in one line. None without --min-psnr."""
    if min_psnr is None:
        return None

    def check(row: dict) -> None:
        if mark_below_min(row, min_psnr):
            summary["below_min_psnr"] = summary.get("below_min_psnr", 0) + 1
            worst = row.get("render_psnr_worst_view")
            log(f"below --min-psnr {min_psnr:g} dB: {row['input_uri']} render PSNR {row['render_psnr']:.2f} dB"
                + ("" if worst is None else f" (worst view {worst:.2f} dB)")
                + "; its output is kept (redo: --force --include PATH)")

    return check


class NotWritable(Exception):
    """The output or manifest location refuses a write: checked before any work."""


def settled_by_other_run(store: Store, args: argparse.Namespace, run_id: str, shash: str,
                         planned_at: dt.datetime) -> Callable[[dict], Optional[dict]]:
    """The check made after each claim: task -> another run's row, when that run settled this
    input with our settings in a row the plan did not read (so this run must not compress it
    again). Rows the plan read were its to judge: it redid them (the output gone, another
    input) on purpose. Why not "finished after `planned_at`": a row finishes a moment before it
    is written, so one finished before the plan started can still be missing from what the plan
    read (two runs started a second apart compressed a scene twice that way). With --force the
    plan reads no row and redoes every one settled before it started."""
    others = OtherRunsView(store, args.manifest, run_id)

    def check(task: dict) -> Optional[dict]:
        # another run writes the output, then its row, then releases the lease: when no lease was
        # waited on and the output is absent, nothing settled it `ok` (one HEAD, no listing)
        if "waited_for" not in task and not store.exists(done_marker(task["output_uri"], args.layout)):
            return None
        others.refresh()
        prev = others.latest(task["input_uri"])
        if prev is None:
            return None
        if args.force:
            read_by_plan = prev["finished_at"] < planned_at
        else:
            read_by_plan = task.get("judged") is not None and prev["finished_at"] <= task["judged"]
        if read_by_plan:
            return None
        return prev if still_settled(prev, task["etag"], task["output_uri"], shash, store.exists, args.layout) else None

    return check


def _run_tasks(args, tasks, writer, leases, store, summary, run_id, shash, planned_at) -> None:
    from ray_jobs.actors import SceneCompressor
    from ray_jobs.pool import IN_FLIGHT_PER_ACTOR
    from ray_jobs.scheduler import Scheduler

    ray = connect_ray(args.address)
    streamed = [t for t in tasks if t.get("streamed")]
    tasks = [t for t in tasks if not t.get("streamed")]
    # a streamed scene's groups go to every actor the cluster has room for
    n, opts, desc = pool_shape(ray, args, 1 << 30 if streamed else len(tasks))
    log(desc)
    metric = render_metric_setting(args)
    # max_task_retries=0: the scheduler retries a dead actor's scenes itself, counting attempts
    remote_cls = ray.remote(max_concurrency=IN_FLIGHT_PER_ACTOR, max_restarts=-1, max_task_retries=0,
                            **opts)(SceneCompressor)
    actors = [remote_cls.remote(args.device, run_settings(args), args.layout, run_id, shash, args.max_retries,
                                args.s3_retry_seconds, metric, args.manifest, args.min_psnr,
                                args.max_scene_splats)
              for _ in range(n)]
    done_by_other_run = settled_by_other_run(store, args, run_id, shash, planned_at)
    sched = Scheduler(ray, actors, writer, leases, done_by_other_run, run_id, shash, args.max_retries,
                      args.scene_timeout, summary, log)
    try:
        if tasks:
            sched.run(tasks)
        if streamed:
            _run_streamed(ray, actors, streamed, args, writer, leases, store, summary, run_id, shash,
                          done_by_other_run, metric)
    finally:
        # every row an actor's thread still holds written before the actors go, so the writer's
        # close can fold them away (a dead actor answers with an error: its rows are the driver's)
        for a in actors:
            try:
                ray.get(a.flush_rows.remote(), timeout=60)
            except Exception:
                pass
        for a in actors:
            ray.kill(a)


def _run_streamed(ray, actors, tasks, args, writer, leases, store, summary, run_id, shash, done_by_other_run,
                  render_metric: Optional[bool]) -> None:
    """Streamed scenes one after another, each over every actor (`streamed.StreamedScene`)."""
    import time

    from ray_jobs.streamed import StreamedScene

    ray.get([a.ready.remote() for a in actors])
    runner = StreamedScene(ray, actors, store, lod_settings(args), memory_budget(args),
                           args.max_retries, args.scene_timeout, log,
                           tick=lambda: leases.renew() if leases.renew_due() else None,
                           render_metric=render_metric, groups_per_call=args.groups_per_call)
    t0 = time.monotonic()
    for k, task in enumerate(tasks):
        holder = leases.claim(task["output_uri"])
        if holder is not None:
            log(f"{task['rel']}: its output is being written by {holder}; left to that run")
            continue
        try:
            prev = done_by_other_run(task)
            if prev is not None:
                row = skipped_row(prev, run_id)
            else:
                row = runner.run(task, run_id, shash)
                row["quality"] = args.quality
            writer.add(row)
        finally:
            leases.release(task["output_uri"])
        summary[row["status"]] += 1
        detail = ("another run finished it" if prev is not None
                  else f"{row['splats']:,} splats, levels {row['lod_counts']}, {row['lod_files']} files, "
                       f"{row['seconds_total']:.1f}s" if row["status"] == "ok"
                  else f"{row['error_class']}: {row['error_message']}")
        log(f"[streamed {k + 1}/{len(tasks)}] {row['status']:<6} {task['rel']} ({detail})")
    summary["seconds"] = summary.get("seconds", 0.0) + time.monotonic() - t0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.actors != "auto" and not str(args.actors).isdigit():
        build_parser().error("--actors must be a positive integer or 'auto'")
    if args.gpus_per_actor <= 0:
        build_parser().error("--gpus-per-actor must be > 0")
    if args.groups_per_call is not None and args.groups_per_call < 1:
        build_parser().error("--groups-per-call must be at least 1")
    try:
        edit = compress_settings(args, on_gpu=False).edit
    except ValueError as exc:
        build_parser().error(str(exc))
    if args.streamed_above is not None and not edit.identity:
        build_parser().error("the edits (--invalid drop, --rotate, ..., --max-splats) are not supported for streamed "
                             "scenes yet: leave out --streamed-above or the edits")
    try:
        summary = run(args)
    except (FileNotFoundError, NotWritable) as exc:
        log(f"error: {exc}")
        return 2
    below = f", {summary['below_min_psnr']} ok below --min-psnr" if summary.get("below_min_psnr") else ""
    log(f"done: {summary['ok']} ok{below}, {summary['skipped']} skipped, {summary['failed']} failed; "
        f"manifest under {summary['manifest']}")
    print(json.dumps({k: v for k, v in summary.items() if k != "manifest_parts"}))
    if args.dry_run:
        return 0
    if args.fail_on_error and summary["failed"]:
        return 1
    if summary.get("unwritten_rows"):
        return 1
    if summary["todo"] and not (summary["ok"] or summary["skipped"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
