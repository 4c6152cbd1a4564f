"""Fixtures' building blocks for the backfill tests: a real S3 endpoint (moto's server over HTTP
on 127.0.0.1) and scene folders with good and corrupt PLYs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from sogs_core.formats.ply.write import ply_bytes

from .conftest import make_scene


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """`python -m moto.server` on a free loopback port; the standard AWS variables point at it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)

    @property
    def env(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def scene_files(good: int, n: int = 1500, sh: int = 1) -> dict[str, bytes]:
    """rel path -> bytes: `good` valid scenes (some nested) and two corrupt ones."""
    files = {}
    for i in range(good):
        rel = f"scene_{i}.ply" if i % 2 == 0 else f"nested/deeper/scene_{i}.ply"
        files[rel] = ply_bytes(make_scene(n + 37 * i, sh, seed=100 + i))
    files["corrupt/garbage.ply"] = b"this is not a ply file at all"
    files["corrupt/truncated.ply"] = ply_bytes(make_scene(n, sh, seed=99))[:-5000]
    files["notes.txt"] = b"not a scene"
    return files


def write_local(root: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def fast_env() -> dict:
    """Variables that keep a 2-core test box responsive under Ray."""
    return {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the moto server that can fail requests the way S3
    does under trouble: every Nth request (`fail_every`) or every request until `outage_until`
    (time.monotonic()) gets a 503 SlowDown; the rest pass through byte for byte."""

    def __init__(self, target: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlparse

        self.fail_every = 0
        self.outage_until = 0.0
        self.count = 0
        self.failed = 0
        lock = threading.Lock()
        host, port = urlparse(target).hostname, urlparse(target).port
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    proxy.count += 1
                    fail = (time.monotonic() < proxy.outage_until
                            or (proxy.fail_every and proxy.count % proxy.fail_every == 0))
                    proxy.failed += bool(fail)
                if fail:
                    msg = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(host, port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
