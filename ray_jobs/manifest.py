"""The Parquet manifest: one row per input scene per run, persisted as it finishes.

Rows go to part files `<manifest>/run-<run_id>-part-<nnnnn>.parquet`, flushed every few rows or
seconds, so a killed driver keeps what finished; nothing is ever rewritten. Resume reads every
part of every run and keeps, per input, the latest `ok` row. The columns are listed in SCHEMA
and documented in the README.
"""
from __future__ import annotations

import io
import time
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .storage import Store, join

STAGES = ("read", "sort", "cluster", "quantize", "encode", "write", "total")
FIDELITY = ("position_max_steps", "rotation_max_deg", "log_scale_max_error", "opacity_max_error",
            "f_dc_rmse", "f_rest_rmse")

SCHEMA = pa.schema(
    [("run_id", pa.string()), ("input_uri", pa.string()), ("input_bytes", pa.int64()),
     ("input_etag", pa.string()), ("input_format", pa.string()), ("splats", pa.int64()), ("sh_degree", pa.int8()),
     ("output_uri", pa.string()), ("output_bytes", pa.int64()), ("ratio", pa.float64())]
    + [(f"seconds_{s}", pa.float64()) for s in STAGES]
    + [(f"fid_{f}", pa.float64()) for f in FIDELITY]
    + [("status", pa.string()), ("error_class", pa.string()), ("error_message", pa.string()),
       ("attempts", pa.int32()), ("node", pa.string()), ("gpu", pa.string()),
       ("settings_hash", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
       ("finished_at", pa.timestamp("us", tz="UTC"))])


def empty_row() -> dict:
    return {name: None for name in SCHEMA.names}


class ManifestWriter:
    """Buffers rows and writes them as Parquet part files through the Store."""

    def __init__(self, store: Store, prefix: str, run_id: str, flush_rows: int = 8,
                 flush_seconds: float = 10.0) -> None:
        self.store, self.prefix, self.run_id = store, prefix, run_id
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.pending: list[dict] = []
        self.part = 0
        self.last_flush = time.monotonic()
        self.written: list[str] = []

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.flush_rows or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_pylist(self.pending, schema=SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        uri = join(self.prefix, f"run-{self.run_id}-part-{self.part:05d}.parquet")
        self.store.put(uri, buf.getvalue())
        self.written.append(uri)
        self.part += 1
        self.pending = []
        self.last_flush = time.monotonic()


def conform(table: pa.Table) -> pa.Table:
    """A part written by an older version, brought to today's SCHEMA: columns it lacks (such as
    input_format) are added as nulls; then cast."""
    for f in SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(len(table), f.type))
    return table.select(SCHEMA.names).cast(SCHEMA)


def read_manifest(store: Store, prefix: str) -> Optional[pa.Table]:
    """All rows of all runs under the manifest prefix (None when there are none)."""
    tables = []
    for obj in store.list_all(prefix):
        if obj.rel.endswith(".parquet") and "/" not in obj.rel:
            tables.append(conform(pq.read_table(io.BytesIO(store.get(obj.uri)))))
    return pa.concat_tables(tables) if tables else None


#: failures that the same input and settings reproduce: a re-run skips them until the input changes
PERMANENT_ERRORS = ("SplatFileError", "PlyError", "SogFormatError", "SpzError", "SplatError", "KsplatError",
                    "SogsError")


def latest_settled(table: Optional[pa.Table]) -> dict[str, dict]:
    """input_uri -> its most recent settled row: 'ok', or 'failed' on bad input (which the same
    bytes would fail again). Transient failures are not settled: the next run retries them."""
    done: dict[str, dict] = {}
    if table is None:
        return done
    for row in table.to_pylist():
        settled = row["status"] == "ok" or (row["status"] == "failed" and row["error_class"] in PERMANENT_ERRORS)
        if not settled:
            continue
        prev = done.get(row["input_uri"])
        if prev is None or row["finished_at"] >= prev["finished_at"]:
            done[row["input_uri"]] = row
    return done
