"""One worker per scene: a lease object beside each output while a run works on it.

`<output>.lease` (for a folder output `a/b/x/`, `a/b/x.lease`) holds the run id, the host and an
expiry time. A run claims it with a create that fails if the object exists (S3 If-None-Match: *,
locally O_EXCL), renews its leases while the scenes run, and deletes each one once the scene's
manifest row is durable. A second run against the same output finds the lease and waits for the
scene instead of compressing it too; a lease whose run died expires after `ttl` seconds and is
taken over with a conditional replace (S3 If-Match on its ETag), so a dead run blocks nothing for
long, and two runs never write into one output folder at the same time.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Optional

from ray_jobs.storage import Store


def lease_uri(output_uri: str) -> str:
    return output_uri.rstrip("/") + ".lease"


class Leases:
    """The leases one run holds."""

    def __init__(self, store: Store, run_id: str, ttl: float = 90.0) -> None:
        self.store, self.run_id, self.ttl = store, run_id, ttl
        self.held: dict[str, str] = {}          # output uri -> lease uri
        self.last_renew = time.monotonic()
        self.host = f"{socket.gethostname()}:{os.getpid()}"

    def _body(self) -> bytes:
        return json.dumps({"run_id": self.run_id, "host": self.host, "expires": time.time() + self.ttl}).encode()

    def claim(self, output_uri: str) -> Optional[str]:
        """Take the scene's lease. None on success, else who holds it (and until when)."""
        uri = lease_uri(output_uri)
        for _ in range(3):
            if self.store.put_if_absent(uri, self._body()):
                self.held[output_uri] = uri
                return None
            current = self.store.get_with_etag(uri)
            if current is None:
                continue                        # released between our two calls: try again
            data, etag = current
            try:
                info = json.loads(data)
                holder, expires = str(info["run_id"]), float(info["expires"])
            except (ValueError, KeyError, TypeError):
                holder, expires = "an unreadable lease", 0.0
            if holder == self.run_id:
                self.held[output_uri] = uri
                return None
            if expires > time.time():
                return f"run {holder} on {info.get('host', '?')} (lease for {expires - time.time():.0f} s more)"
            if self.store.put_if_match(uri, self._body(), etag):   # expired: its run is gone
                self.held[output_uri] = uri
                return None
        return "another run (the lease changed while it was being claimed)"

    def renew_due(self) -> bool:
        return time.monotonic() - self.last_renew > self.ttl / 3

    def renew(self) -> None:
        """Push the expiry of every held lease forward (best effort: a failure is retried next time)."""
        self.last_renew = time.monotonic()
        for uri in list(self.held.values()):
            try:
                self.store.put(uri, self._body())
            except Exception:
                pass

    def release(self, output_uri: str) -> None:
        uri = self.held.pop(output_uri, None)
        if uri is not None:
            try:
                self.store.delete(uri)
            except Exception:
                pass

    def release_all(self) -> None:
        for out in list(self.held):
            self.release(out)
