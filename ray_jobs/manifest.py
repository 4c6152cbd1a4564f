"""The Parquet manifest: one row per input scene per run, durable the moment it finishes.

Each row is its own small object first (`<manifest>/run-<run_id>-row-<n>.parquet`), compacted
into parts (`run-<run_id>-part-<n>.parquet`) as the run goes and at its end, so a killed driver
loses no finished scene. Resume reads every part and row object of every run and keeps, per
input, the latest settled row. The columns are listed in SCHEMA and documented in the README.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import sys
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ray_jobs.storage import ObjectInfo, Store, join

STAGES = ("read", "edit", "sort", "cluster", "quantize", "encode", "write", "render", "total")
FIDELITY = ("position_max_steps", "rotation_max_deg", "log_scale_max_error", "opacity_max_error",
            "f_dc_rmse", "f_rest_rmse")
#: the render metric's keys of a compress result's fidelity, kept under their own names (null when
#: the run had no --render-metric, and for streamed scenes)
RENDER = ("render_psnr", "render_ssim", "render_psnr_worst_view")

SCHEMA = pa.schema(
    [("run_id", pa.string()), ("input_uri", pa.string()), ("input_bytes", pa.int64()),
     ("input_etag", pa.string()), ("input_format", pa.string()), ("splats", pa.int64()), ("sh_degree", pa.int8()),
     ("output_uri", pa.string()), ("output_bytes", pa.int64()), ("ratio", pa.float64())]
    + [(f"seconds_{s}", pa.float64()) for s in STAGES]
    + [(f"fid_{f}", pa.float64()) for f in FIDELITY]
    + [(r, pa.float64()) for r in RENDER] + [("render_below_min", pa.bool_())]
    + [("status", pa.string()), ("error_class", pa.string()), ("error_message", pa.string()),
       ("attempts", pa.int32()), ("node", pa.string()), ("gpu", pa.string()),
       ("lod_levels", pa.int8()), ("lod_files", pa.int32()), ("lod_counts", pa.string()),
       ("settings_hash", pa.string()), ("quality", pa.int8()), ("edits", pa.string()),
       ("dropped_invalid", pa.int64()), ("dropped_filter", pa.int64()), ("merged_budget", pa.int64()),
       ("dropped_invisible", pa.int64()), ("software_version", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
       ("finished_at", pa.timestamp("us", tz="UTC"))])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def empty_row() -> dict:
    from sogs_core import __version__

    row = {name: None for name in SCHEMA.names}
    row["software_version"] = __version__
    return row


# -- rows -------------------------------------------------------------------------------------------
# Every row of a run is built here: `task_row` (what the scene is, where it goes, which settings),
# then `ok_row` or `failed_row` on top of it; `skipped_row` carries a settled row over.

def task_row(task: dict, run_id: str, settings_hash: str, **columns) -> dict:
    """A row for one planned scene: the input, output and settings columns, then `columns`."""
    row = empty_row()
    row.update(run_id=run_id, input_uri=task["input_uri"], input_bytes=task["size"], input_etag=task["etag"],
               input_format=task.get("format"), output_uri=task["output_uri"], settings_hash=settings_hash)
    row.update(columns)
    return row


def figure_columns(seconds: dict, fidelity: dict) -> dict:
    """The per-stage seconds (`seconds_<stage>`), fidelity (`fid_<key>`) and render metric
    (`render_psnr`, ...) columns; a stage or key the dicts lack is null. `render_below_min` is
    the driver's to set (`mark_below_min`)."""
    cols = {f"seconds_{s}": seconds.get(s) for s in STAGES}
    cols.update({f"fid_{f}": fidelity.get(f) for f in FIDELITY})
    cols.update({r: None if fidelity.get(r) is None else float(fidelity[r]) for r in RENDER})
    return cols


def mark_below_min(row: dict, min_psnr: Optional[float]) -> Optional[bool]:
    """--min-psnr on a row of this run: an `ok` row with a render_psnr gets render_below_min
    (True below `min_psnr`, False at or above it) and it is returned; any other row is left as
    it is (a skipped row keeps what the run that made it said) and None is returned."""
    if min_psnr is None or row.get("status") != "ok" or row.get("render_psnr") is None:
        return None
    row["render_below_min"] = bool(row["render_psnr"] < min_psnr)
    return row["render_below_min"]


def ok_row(row: dict, seconds: dict, fidelity: dict, **columns) -> dict:
    """`row` (a `task_row`) marked ok, with its figures and `columns`; updated in place and returned."""
    row.update(status="ok", **columns)
    row.update(figure_columns(seconds, fidelity))
    return row


def failed_row(row: dict, exc: BaseException, message: Optional[str] = None, **columns) -> dict:
    """`row` (a `task_row`) marked failed by `exc`: its class and `message` (default: the
    exception's text, else its repr), cut to 2000 characters; then `columns` (which may name
    another error_class). Updated in place and returned."""
    text = (str(exc).strip() or repr(exc)) if message is None else message
    row.update(status="failed", error_class=type(exc).__name__, error_message=text[:2000])
    row.update(columns)
    return row


def failed_task_row(task: dict, run_id: str, settings_hash: str, exc: BaseException, attempts: int,
                    started: Optional[dt.datetime] = None, **columns) -> dict:
    """The driver's row for a scene no actor finished: planned to fail, its actor dead on every
    attempt, past its time limit, or no actor alive."""
    row = task_row(task, run_id, settings_hash, attempts=attempts, started_at=started or utcnow(),
                   node=os.environ.get("HOSTNAME"))
    return failed_row(row, exc, finished_at=utcnow(), **columns)


class ManifestWriter:
    """The run's rows, durable one by one: each row is written as its own small Parquet object
    (`run-<id>-row-<n>.parquet`, a journal) the moment it is added, so a killed driver loses no
    finished scene; every `compact_rows` rows and at `close` they are compacted into one part
    (`run-<id>-part-<n>.parquet`, written before the row objects are deleted; `read_manifest`
    drops the duplicates that a crash between the two leaves). A write that fails (full disk,
    denied, an outage longer than the store's retries) never raises: the rows stay pending, are
    tried again with the next row and at `close`, which returns what could not be written."""

    def __init__(self, store: Store, prefix: str, run_id: str, compact_rows: int = 500,
                 log=None, on_row=None) -> None:
        """on_row: called with each row `add`/`add_many` gets, once, before it is written (it may
        set columns: the backfill marks --min-psnr there)."""
        self.store, self.prefix, self.run_id = store, prefix, run_id
        self.compact_rows = compact_rows
        self.log = log or (lambda msg: None)
        self.on_row = on_row
        self.pending: list[dict] = []
        self.journal: list[tuple[str, list[dict]]] = []     # row objects written since the last part
        self.seq = 0
        self.part = 0
        self.written: list[str] = []
        self.adopted: set[str] = set()        # row objects an actor writes (maybe not yet, or never)
        self.failures = 0

    def _put_rows(self, name: str, rows: list[dict]) -> str:
        uri = join(self.prefix, name)
        self.store.put(uri, rows_object(rows))
        return uri

    def adopt(self, row: dict, uri: str) -> None:
        """A row an actor makes durable as its own journal object `uri` (`actor_row_uri`):
        counted and compacted like the rows this writer wrote (its object deleted after the part
        holding it is written), never written a second time."""
        if self.on_row is not None:
            self.on_row(row)
        self.journal.append((uri, [row]))
        self.adopted.add(uri)
        self.written.append(uri)
        if sum(len(r) for _, r in self.journal) >= self.compact_rows:
            self.compact()

    def add_part(self, rows: list[dict]) -> bool:
        """Write `rows` as one part at once, not as a journal object compacted later: for rows
        made in bulk (a resume's skipped scenes), which would otherwise be written twice. A part
        that fails to write leaves the rows to the journal path (`add_many`)."""
        if self.on_row is not None:
            for row in rows:
                self.on_row(row)
        try:
            part = self._put_rows(f"run-{self.run_id}-part-{self.part:05d}.parquet", rows)
        except Exception:
            self.pending.extend(rows)                        # counted already: no hook again
            return self.add_many([])
        self.part += 1
        self.written.append(part)
        return True

    def add(self, row: dict) -> bool:
        """Write `row` now (with any rows still pending); True when it is durable."""
        return self.add_many([row])

    def add_many(self, rows: list[dict]) -> bool:
        """Write rows as one journal object; True when they (and all pending rows) are durable."""
        if self.on_row is not None:
            for row in rows:
                self.on_row(row)
        self.pending.extend(rows)
        if not self.pending:
            return True
        try:
            uri = self._put_rows(f"run-{self.run_id}-row-{self.seq:06d}.parquet", self.pending)
        except Exception as exc:
            self.failures += 1
            self.log(f"manifest write failed ({len(self.pending)} row(s) kept to retry): "
                     f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
            return False
        self.seq += 1
        self.journal.append((uri, self.pending))
        self.written.append(uri)
        self.pending = []
        if sum(len(r) for _, r in self.journal) >= self.compact_rows:
            self.compact()
        return True

    def compact(self) -> None:
        """The journal's rows into one part, then the row objects deleted (best effort). A single
        row object is left as it is, unless an actor writes it: then only the part is sure."""
        if len(self.journal) < 2 and not any(uri in self.adopted for uri, _ in self.journal):
            return
        rows = [r for _, batch in self.journal for r in batch]
        try:
            part = self._put_rows(f"run-{self.run_id}-part-{self.part:05d}.parquet", rows)
        except Exception as exc:
            self.log(f"manifest compaction failed (rows stay as journal objects): {exc}")
            return
        self.part += 1
        self.written.append(part)
        for uri, _ in self.journal:
            try:
                self.store.delete(uri)
                self.written.remove(uri)
            except Exception:
                pass
        self.journal = []

    def close(self) -> list[dict]:
        """Write what is pending, compact; returns the rows that still could not be written. An
        adopted row whose part could not be written and whose actor's object is not there (its
        write failed too: a full disk) is written here, or returned."""
        if self.pending:
            self.add_many([])
        self.compact()
        self._sweep_actor_rows()
        missing = {uri for uri, _ in self.journal if uri in self.adopted and not self._exists(uri)}
        if missing:
            self.pending.extend(r for uri, rows in self.journal if uri in missing for r in rows)
            self.journal = [(uri, rows) for uri, rows in self.journal if uri not in missing]
            self.add_many([])
        return list(self.pending)

    def _sweep_actor_rows(self) -> None:
        """Delete this run's actor row objects whose rows a part holds: an actor's thread can write
        one after compaction already deleted its name (one listing; best effort). Each would be
        a second copy of its row for a reader of the folder as one Parquet dataset."""
        if not self.adopted:
            return
        kept = {uri for uri, _ in self.journal}
        prefix = f"run-{self.run_id}-row-w"
        try:
            for obj in self.store.list_all(self.prefix):
                if obj.rel.startswith(prefix) and obj.uri not in kept and join(self.prefix, obj.rel) not in kept:
                    self.store.delete(obj.uri)
        except Exception:
            pass

    def _exists(self, uri: str) -> bool:
        try:
            return self.store.exists(uri)
        except Exception:
            return False


def rows_object(rows: list[dict]) -> bytes:
    """The bytes of one rows object (Parquet, SCHEMA)."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buf)
    return buf.getvalue()


def actor_row_uri(prefix: str, run_id: str, writer_tag: str, seq: int) -> str:
    """Where an actor writes a finished row as its own journal object. The name sorts after the
    driver's own row objects of the run, so where both hold a row of one scene, `read_manifest`
    keeps the driver's (and a run's parts sort before both)."""
    return join(prefix, f"run-{run_id}-row-w{writer_tag}-{seq:06d}.parquet")


def skipped_row(prev: dict, run_id: str) -> dict:
    """This run's row for a scene a settled row already covers: its figures (and, for a
    known-bad input, its error) carry over."""
    now = utcnow()
    row = dict(prev)
    row.update(run_id=run_id, status="skipped", attempts=0, started_at=now, finished_at=now)
    return row


def conform(table: pa.Table) -> pa.Table:
    """A part written by an older version, brought to today's SCHEMA: columns it lacks (such as
    input_format, seconds_render and the render metric's) are added as nulls; then cast."""
    for f in SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(len(table), f.type))
    return table.select(SCHEMA.names).cast(SCHEMA)


def _is_rows_object(obj: ObjectInfo) -> bool:
    """Whether a listed object under the manifest prefix is a part or journal object of a run."""
    return obj.rel.endswith(".parquet") and "/" not in obj.rel and obj.problem is None


def _rows(data: bytes, uri: str = "") -> Optional[pa.Table]:
    """A part or journal object's rows, in today's SCHEMA; None (with one warning line that names
    the object) when it is not a manifest object: random bytes or a foreign Parquet file under
    the prefix must not stop every run and report. Its rows, if it had any, are lost to this
    read, so the scenes they settled are done again (never skipped wrongly)."""
    try:
        return conform(pq.read_table(io.BytesIO(data)))
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        print(f"sogs-cluster: warning: manifest: skipped {uri or 'an object'}: not a manifest rows object "
              f"({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr, flush=True)
        return None


def read_manifest(store: Store, prefix: str, worked_only: bool = False) -> Optional[pa.Table]:
    """All rows of all runs under the manifest prefix (None when there are none): parts and
    journal objects, one row per (run, input) (a row both in a part and in a journal object that
    a crash kept is counted once). `worked_only`: without the `skipped` rows, which no decision
    reads (a plan's): every resume adds one per done scene, so they would grow its memory run
    after run."""
    tables = []
    for obj in store.list_all(prefix):
        table = _rows(store.get(obj.uri), obj.uri) if _is_rows_object(obj) else None
        if table is not None and worked_only:
            table = table.filter(pc.not_equal(table["status"], "skipped"))      # object by object
        if table is not None:
            tables.append(table)
    if not tables:
        return None
    table = pa.concat_tables(tables)
    seen: dict[tuple, int] = {}
    keep = []
    for i, (run, uri) in enumerate(zip(table.column("run_id").to_pylist(), table.column("input_uri").to_pylist())):
        if (run, uri) not in seen:
            seen[(run, uri)] = i
            keep.append(i)
    return table.take(keep) if len(keep) < len(table) else table


class OtherRunsView:
    """The settled rows of every other run, read incrementally: each `refresh` lists the manifest
    prefix once and reads only the objects it has not read before (this run's own objects are
    never read). Why: the scheduler must ask "did another run settle this scene?" after every
    claim, and re-reading the whole manifest each time would cost O(N^2) on a large backfill."""

    def __init__(self, store: Store, prefix: str, own_run_id: str) -> None:
        self.store, self.prefix = store, prefix
        self.own = f"run-{own_run_id}-"
        self.read: set[str] = set()
        self.settled: dict[str, dict] = {}

    def refresh(self) -> None:
        """Read what other runs wrote since the last refresh. A journal object that compaction
        deleted between the listing and the read means its part is newer than the listing: list
        again until one listing reads whole."""
        while True:
            vanished = False
            for obj in self.store.list_all(self.prefix):
                if obj.uri in self.read or not _is_rows_object(obj) or obj.rel.startswith(self.own):
                    continue
                got = self.store.get_with_etag(obj.uri)
                if got is None:
                    vanished = True
                    continue
                self.read.add(obj.uri)
                latest_settled(_rows(got[0], obj.uri), into=self.settled)
            if not vanished:
                return

    def latest(self, input_uri: str) -> Optional[dict]:
        """The most recent settled row another run wrote for input_uri, as of the last refresh."""
        return self.settled.get(input_uri)


#: failures that the same input and settings reproduce: a re-run skips them until the input changes
PERMANENT_ERRORS = ("SplatFileError", "PlyError", "SogFormatError", "SpzError", "SplatError", "KsplatError",
                    "SogsError", "EmptySceneError")


def settles(status: Optional[str], error_class: Optional[str]) -> bool:
    """Whether a row settles its scene: `ok`, or `failed` on bad input (which the same bytes would
    fail again)."""
    return status == "ok" or (status == "failed" and error_class in PERMANENT_ERRORS)


def latest_settled(table: Optional[pa.Table], into: Optional[dict[str, dict]] = None) -> dict[str, dict]:
    """input_uri -> its most recent settled row: 'ok', or 'failed' on bad input (which the same
    bytes would fail again). Transient failures are not settled: the next run retries them.
    With `into`, the table's rows are merged into that dict (and it is returned)."""
    done: dict[str, dict] = {} if into is None else into
    if table is None:
        return done
    for row in table.to_pylist():
        if not settles(row["status"], row["error_class"]):
            continue
        prev = done.get(row["input_uri"])
        if prev is None or row["finished_at"] >= prev["finished_at"]:
            done[row["input_uri"]] = row
    return done


class SettledRows:
    """input_uri -> its latest settled row, as `latest_settled` decides, over a whole manifest,
    holding as Python values only the columns a plan decides by: a million rows as dicts would be
    gigabytes. Whole rows are built a batch at a time (`rows`), when they are written."""

    DECIDE = ("input_uri", "input_etag", "settings_hash", "status", "output_uri", "error_class", "error_message",
              "finished_at")

    def __init__(self, table: Optional[pa.Table]) -> None:
        self.table = table
        self.latest: dict[str, int] = {}
        self.cols: dict[str, list] = {c: [] for c in self.DECIDE}
        if table is None:
            return
        self.cols = table.select(list(self.DECIDE)).to_pydict()
        c = self.cols
        for i, (uri, status, err, fin) in enumerate(zip(c["input_uri"], c["status"], c["error_class"],
                                                        c["finished_at"])):
            if not settles(status, err):
                continue
            j = self.latest.get(uri)
            if j is None or fin >= c["finished_at"][j]:
                self.latest[uri] = i

    def get(self, input_uri: str) -> Optional[dict]:
        """The deciding columns of the scene's latest settled row and its "index"; None if none."""
        i = self.latest.get(input_uri)
        if i is None:
            return None
        row = {k: v[i] for k, v in self.cols.items()}
        row["index"] = i
        return row

    def rows(self, indices: list[int]) -> list[dict]:
        """Whole rows, by index."""
        return self.table.take(indices).to_pylist() if indices else []


class SkippedRows:
    """The scenes a plan skips (indices into `SettledRows`), made this run's rows a batch at a
    time, so a resume over a million done scenes never holds them all."""

    def __init__(self, settled: SettledRows, indices: list[int]) -> None:
        self.settled, self.indices = settled, indices

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, run_id: str, size: int = 5000):
        """Lists of at most `size` of this run's skipped rows."""
        for k in range(0, len(self.indices), size):
            yield [skipped_row(r, run_id) for r in self.settled.rows(self.indices[k:k + size])]
