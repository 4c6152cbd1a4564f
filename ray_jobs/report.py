"""One self-contained HTML page from the manifest: what a backfill did, to look at, not to parse.

Totals (ok / skipped / failed, bytes, ratio, wall time, scenes per minute, GPU seconds per
scene), plots (throughput over time, per-stage seconds, ratio against splat count, fidelity
against the quantization's bounds, with --render-metric the render PSNR per scene), the
failures, the slowest scenes and (with the render metric) the lowest render PSNRs, and the
settings, versions, nodes and GPUs seen. Plots are drawn with matplotlib (the `report` extra) as
inline SVG; the page loads nothing from the network and runs no script. Without matplotlib the
page has every table and says how to get the plots.
"""
from __future__ import annotations

import datetime as dt
import html
import io
from collections import Counter
from typing import Optional

import pyarrow as pa

from ray_jobs.manifest import STAGES

FIDELITY_PLOTS = (("fid_position_max_steps", "position, max (16-bit steps)", "position_max_steps"),
                  ("fid_rotation_max_deg", "rotation, max (degrees)", "rotation_max_deg"),
                  ("fid_opacity_max_error", "opacity, max (after sigmoid)", "opacity_max_error"),
                  ("fid_log_scale_max_error", "log-scale, max", None),
                  ("fid_f_dc_rmse", "colour (DC) RMSE", None),
                  ("fid_f_rest_rmse", "SH rest RMSE", None))
#: rows in the lowest-render-PSNR table (and every scene below --min-psnr besides)
WORST_RENDER_ROWS = 20
#: failed scenes listed one by one at most (the rest are counted per error class)
FAILURE_ROWS = 200
#: points a plot draws as vectors at most; above it curves are thinned to this many points and
#: clouds drawn as one embedded image, so the page stays a few MB at a million scenes
VECTOR_POINTS = 2000
#: the manifest columns the page reads (a million rows of all of them would be gigabytes)
COLUMNS = ("run_id", "input_uri", "status", "error_class", "error_message", "attempts", "splats", "ratio",
           "input_bytes", "output_bytes", "started_at", "finished_at", "node", "gpu", "settings_hash",
           "software_version", "render_psnr", "render_ssim", "render_psnr_worst_view", "render_below_min",
           *(f"seconds_{s}" for s in STAGES), *(c for c, _, _ in FIDELITY_PLOTS))


def select_rows(table: pa.Table, run: Optional[str] = None, all_runs: bool = False) -> tuple[list[dict], str]:
    """(rows, what they are): one run (the latest by default; run ids start with their UTC start
    time) or every run."""
    rows = table.select([c for c in COLUMNS if c in table.column_names]).to_pylist()
    runs = sorted({r["run_id"] for r in rows if r["run_id"]})
    if not runs:
        raise ValueError("the manifest has no rows")
    if all_runs:
        return rows, f"all {len(runs)} runs"
    run = run or runs[-1]
    if run not in runs:
        raise ValueError(f"no run {run!r} in the manifest (runs: {', '.join(runs[-5:])})")
    return [r for r in rows if r["run_id"] == run], f"run {run}"


def totals(rows: list[dict]) -> dict:
    """The numbers at the top of the page."""
    status = Counter(r["status"] for r in rows)
    done = [r for r in rows if r["status"] in ("ok", "failed")]          # worked on in this run
    ok = [r for r in rows if r["status"] == "ok"]
    starts = [r["started_at"] for r in done if r["started_at"]]
    ends = [r["finished_at"] for r in done if r["finished_at"]]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    in_b = sum(r["input_bytes"] or 0 for r in ok)
    out_b = sum(r["output_bytes"] or 0 for r in ok)
    gpu_stage = [sum(r.get(f"seconds_{s}") or 0 for s in ("sort", "cluster", "quantize")) for r in ok]
    return {"scenes": len(rows), "ok": status.get("ok", 0), "skipped": status.get("skipped", 0),
            "failed": status.get("failed", 0), "input_bytes": in_b, "output_bytes": out_b,
            "ratio": in_b / out_b if out_b else None, "wall_seconds": wall,
            "scenes_per_minute": len(done) / wall * 60 if wall > 0 else None,
            "gpu_stage_seconds_per_scene": sum(gpu_stage) / len(gpu_stage) if gpu_stage else None,
            "splats": sum(r["splats"] or 0 for r in ok)}


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _thin(n: int) -> list[int]:
    """At most VECTOR_POINTS indices spread over range(n), the last included."""
    if n <= VECTOR_POINTS:
        return list(range(n))
    step = (n - 1) / (VECTOR_POINTS - 1)
    return sorted({round(i * step) for i in range(VECTOR_POINTS)})


def plots(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, inline SVG) per plot; empty when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return []
    from sogs_core.formats.sog.bounds import QUANTIZATION_BOUNDS

    out = []
    done = sorted((r for r in rows if r["status"] in ("ok", "failed") and r["finished_at"]),
                  key=lambda r: r["finished_at"])
    if done:
        t0 = min(r["started_at"] or r["finished_at"] for r in done)
        fig, ax = plt.subplots(figsize=(7, 3))
        for status, colour in (("ok", "tab:green"), ("failed", "tab:red")):
            xs = [(r["finished_at"] - t0).total_seconds() / 60 for r in done if r["status"] == status]
            if xs:
                keep = _thin(len(xs))
                ax.step([xs[i] for i in keep], [i + 1 for i in keep], where="post", color=colour, label=status)
        ax.set_xlabel("minutes since the first scene started")
        ax.set_ylabel("scenes finished")
        ax.legend()
        out.append(("Scenes finished over time", _svg(fig)))
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        # a stage no scene timed (render, without --render-metric) gets no box
        timed = []
        for s in STAGES:
            vals = [r[f"seconds_{s}"] for r in ok if r[f"seconds_{s}"] is not None]
            if s != "total" and vals:
                timed.append((s, vals))
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.boxplot([vals for _, vals in timed], showfliers=len(ok) <= VECTOR_POINTS)
        ax.set_xticks(range(1, len(timed) + 1), [s for s, _ in timed])
        ax.set_ylabel("seconds per scene")
        out.append(("Seconds per stage (distribution over scenes)", _svg(fig)))
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.scatter([r["splats"] for r in ok], [r["ratio"] or 0 for r in ok], s=12 if len(ok) <= VECTOR_POINTS else 2,
                   rasterized=len(ok) > VECTOR_POINTS)
        ax.set_xscale("log")
        ax.set_xlabel("splats")
        ax.set_ylabel("input bytes / output bytes")
        out.append(("Compression ratio against splat count", _svg(fig)))
        fig, axes = plt.subplots(2, 3, figsize=(9, 5))
        for ax, (col, label, bound_key) in zip(axes.flat, FIDELITY_PLOTS):
            vals = [r[col] for r in ok if r[col] is not None]
            if vals:
                ax.hist(vals, bins=20, color="tab:blue")
            if bound_key:
                ax.axvline(QUANTIZATION_BOUNDS[bound_key], color="tab:red", linestyle="--", label="bound")
                ax.legend(fontsize=7)
            ax.set_title(label, fontsize=9)
        fig.tight_layout()
        out.append(("Fidelity per scene against the quantization's bounds", _svg(fig)))
    rendered = sorted(with_render_metric(rows), key=lambda r: r["render_psnr"])
    if rendered:
        xs = range(1, len(rendered) + 1)
        many = len(rendered) > VECTOR_POINTS
        fig, ax = plt.subplots(figsize=(7, 3))
        keep = _thin(len(rendered))
        ax.plot([xs[i] for i in keep], [rendered[i]["render_psnr"] for i in keep], marker="" if many else ".",
                color="tab:blue", label="mean over views")
        worst = [(x, r["render_psnr_worst_view"]) for x, r in zip(xs, rendered)
                 if r["render_psnr_worst_view"] is not None]
        if worst:
            ax.scatter(*zip(*worst), s=2 if many else 8, color="tab:orange", label="worst view", rasterized=many)
        below = [(x, r["render_psnr"]) for x, r in zip(xs, rendered) if r["render_below_min"]]
        if below:
            ax.scatter(*zip(*below), s=30, facecolors="none", edgecolors="tab:red", label="below --min-psnr",
                       rasterized=len(below) > VECTOR_POINTS)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("scenes, lowest render PSNR first")
        ax.set_ylabel("render PSNR (dB)")
        ax.legend(fontsize=7)
        out.append(("Render PSNR per scene (our rasterizer, input against output; sorted)", _svg(fig)))
    return out


def with_render_metric(rows: list[dict]) -> list[dict]:
    """The ok rows that have a render_psnr (backfill --render-metric)."""
    return [r for r in rows if r["status"] == "ok" and r.get("render_psnr") is not None]


def worst_rendered(rows: list[dict], n: int = WORST_RENDER_ROWS) -> list[dict]:
    """The n ok rows of lowest render_psnr, lowest first, then every other row below --min-psnr."""
    rendered = sorted(with_render_metric(rows), key=lambda r: r["render_psnr"])
    return rendered[:n] + [r for r in rendered[n:] if r.get("render_below_min")]


def _table(headers: list[str], body: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in body)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _num(v: Optional[float], spec: str) -> Optional[str]:
    return None if v is None else format(v, spec)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(v)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em;vertical-align:top}th{background:#f3f3f3}.totals td:first-child{font-weight:600}
.failures td:nth-child(3){max-width:600px;word-break:break-word}figure{margin:1em 0}h2{margin-top:1.5em}"""


def render(rows: list[dict], what: str, source: str) -> str:
    """The whole page for these rows."""
    from sogs_core import __version__

    t = totals(rows)
    figs = plots(rows)
    tot = [["scenes", t["scenes"]], ["ok", t["ok"]], ["skipped", t["skipped"]], ["failed", t["failed"]],
           ["splats compressed", t["splats"]], ["input bytes (ok)", t["input_bytes"]],
           ["output bytes (ok)", t["output_bytes"]],
           ["overall ratio", None if t["ratio"] is None else f"{t['ratio']:.2f}x"],
           ["wall time", f"{t['wall_seconds']:.1f} s"],
           ["scenes per minute", None if t["scenes_per_minute"] is None else f"{t['scenes_per_minute']:.1f}"],
           ["GPU-stage seconds per scene (sort + cluster + quantize)",
            None if t["gpu_stage_seconds_per_scene"] is None else f"{t['gpu_stage_seconds_per_scene']:.3f}"]]
    failed = [r for r in rows if r["status"] == "failed"]
    failures = [[r["input_uri"], r["error_class"], r["error_message"], r["attempts"]] for r in failed[:FAILURE_ROWS]]
    failed_by_class = Counter(r["error_class"] for r in failed)
    slow = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -(r["seconds_total"] or 0))[:10]
    slowest = [[r["input_uri"], r["splats"], r["seconds_total"], r["node"], r["gpu"]] for r in slow]
    hashes = Counter(r["settings_hash"] for r in rows if r["settings_hash"])
    versions = Counter(r.get("software_version") for r in rows if r.get("software_version"))
    nodes = Counter((r["node"], r["gpu"]) for r in rows if r["status"] in ("ok", "failed") and r["node"])
    runs = sorted({r["run_id"] for r in rows})
    low = worst_rendered(rows)
    lowest = [[r["input_uri"], f"{r['render_psnr']:.2f}", _num(r["render_psnr_worst_view"], ".2f"),
               _num(r["render_ssim"], ".4f"), r["splats"], {True: "yes", False: "no", None: ""}[r["render_below_min"]]]
              for r in low]
    n_below = sum(1 for r in with_render_metric(rows) if r["render_below_min"])
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>sogs-cluster report: {html.escape(what)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>Backfill report: {html.escape(what)}</h1>",
             f"<p>Manifest {html.escape(source)}; runs: {html.escape(', '.join(runs))}. "
             f"Written by sogs-cluster {html.escape(__version__)} on "
             f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
             "<h2>Totals</h2>", _table(["", "value"], tot, "totals")]
    if figs:
        parts.append("<h2>Plots</h2>")
        parts += [f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}</figure>" for title, svg in figs]
    else:
        parts.append("<p><em>No plots: matplotlib is not installed (pip install 'sogs-cluster[report]').</em></p>")
    parts += [f"<h2>Failures ({len(failed)})</h2>"]
    if len(failed) > FAILURE_ROWS:
        parts += [f"<p>The first {FAILURE_ROWS} are listed; every one is in the manifest "
                  "(<code>status = 'failed'</code>). By error class:</p>",
                  _table(["error class", "scenes"], [[c, n] for c, n in failed_by_class.most_common()])]
    parts += [_table(["scene", "error class", "message", "attempts"], failures, "failures") if failures
              else "<p>None.</p>",
              "<h2>Slowest scenes</h2>", _table(["scene", "splats", "seconds", "node", "GPU"], slowest)]
    if lowest:
        parts += [f"<h2>Lowest render PSNR ({WORST_RENDER_ROWS} worst, and every scene below --min-psnr)</h2>",
                  f"<p>{n_below} scene(s) below --min-psnr. Their outputs are valid and a re-run skips them like "
                  "any ok scene; redo them with <code>--force --include PATH</code>.</p>" if n_below else "",
                  _table(["scene", "render PSNR (dB)", "worst view (dB)", "SSIM", "splats", "below min"], lowest,
                         "render")]
    parts += ["<h2>Settings, versions, machines</h2>",
              _table(["settings hash", "rows"], [[h, n] for h, n in hashes.most_common()]),
              _table(["software version", "rows"], [[v, n] for v, n in versions.most_common()]),
              _table(["node", "GPU", "scenes"], [[nd, g, n] for (nd, g), n in nodes.most_common()]),
              "</body></html>"]
    return "\n".join(parts)


def write_report(store, manifest: str, out: Optional[str] = None, run: Optional[str] = None,
                 all_runs: bool = False) -> str:
    """Read the manifest through `store`, render, write to `out` (default: beside the manifest
    folder, MANIFEST_reports/report-<run>.html: inside it, the page would break readers of the
    folder as one Parquet dataset); returns where it went."""
    from ray_jobs.manifest import read_manifest
    from ray_jobs.storage import join

    table = read_manifest(store, manifest)
    if table is None:
        raise ValueError(f"no manifest rows under {manifest}")
    rows, what = select_rows(table, run, all_runs)
    page = render(rows, what, manifest).encode()
    if out is None:
        name = "report-all.html" if all_runs else f"report-{rows[0]['run_id']}.html"
        out = join(manifest.rstrip("/") + "_reports", name)
    store.put(out, page)
    return out
