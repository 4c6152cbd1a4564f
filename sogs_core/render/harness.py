"""Headless Chromium + the pinned PlayCanvas engine, driven over plain HTTP on 127.0.0.1.

A local server serves `page.html`/`page.js`, the engine's ES module build and the scene files;
Chromium (the system's `chromium`, WebGL 2 through SwiftShader on a CPU-only machine) opens the
page, which posts back each view's pixels, its log and any error (page errors, console errors,
asset load errors). No browser-driver library: the page talks back to the server that served it.
Any error, or no answer within the time limit, raises `RenderError` with what the page said.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np

from sogs_core.render.cameras import View

ENGINE_VERSION = "2.23.3"
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("SOGS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "sogs-cluster"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's WebGL back ends on a machine without a GPU: SwiftShader (Chromium's own, always there)
# or Mesa's llvmpipe through ANGLE's EGL back end (needs Mesa's libEGL and swrast driver).
GL_BACKENDS = {
    "swiftshader": ("--use-angle=swiftshader", "--enable-unsafe-swiftshader"),
    "llvmpipe": ("--use-gl=angle", "--use-angle=gl-egl"),
}
DEFAULT_GL = "swiftshader"


class RenderError(RuntimeError):
    """The engine did not render the scene: the message holds what the page reported."""


def engine_dir(install: bool = True) -> str:
    """The pinned `playcanvas` npm package's build folder, installed into the cache on first use."""
    root = os.path.join(CACHE, f"playcanvas-{ENGINE_VERSION}")
    build = os.path.join(root, "node_modules", "playcanvas", "build")
    if os.path.isfile(os.path.join(build, "playcanvas.mjs")):
        return build
    if not install:
        raise RenderError(f"the PlayCanvas engine {ENGINE_VERSION} is not installed under {root}")
    if shutil.which("npm") is None:
        raise RenderError("npm not found: rendering needs Node/npm to fetch the PlayCanvas engine")
    os.makedirs(root, exist_ok=True)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", root,
                           f"playcanvas@{ENGINE_VERSION}"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not os.path.isfile(os.path.join(build, "playcanvas.mjs")):
        raise RenderError(f"npm install playcanvas@{ENGINE_VERSION} failed: {proc.stderr.strip()[-500:]}")
    return build


def find_browser(explicit: Optional[str] = None) -> str:
    for name in ([explicit] if explicit else []) + [os.environ.get("SOGS_BROWSER", "")] + list(BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    raise RenderError("no Chromium found (apt-get install chromium, or set SOGS_BROWSER)")


class _Job:
    def __init__(self, n_views: int) -> None:
        self.results: dict[int, bytes] = {}
        self.errors: list[str] = []
        self.log: list[str] = []
        self.done = threading.Event()
        self.n_views = n_views


def _handler(job: _Job, files: dict[str, str], engine: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, data: bytes, ctype: str = "application/octet-stream") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            if path in ("/", "/page.html"):
                return self._send(200, open(os.path.join(HERE, "page.html"), "rb").read(), "text/html")
            if path == "/page.js":
                return self._send(200, open(os.path.join(HERE, "page.js"), "rb").read(), "text/javascript")
            if path.startswith("/engine/"):
                local = os.path.normpath(os.path.join(engine, path[len("/engine/"):]))
                if local.startswith(engine) and os.path.isfile(local):
                    return self._send(200, open(local, "rb").read(), "text/javascript")
            if path in files:
                ctype = {"json": "application/json", "webp": "image/webp"}.get(path.rsplit(".", 1)[-1],
                                                                                "application/octet-stream")
                return self._send(200, open(files[path], "rb").read(), ctype)
            if path != "/favicon.ico":
                job.errors.append(f"the page asked for {path}, which is not served")
            self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urllib.parse.urlparse(self.path).path
            if path.startswith("/result/"):
                job.results[int(path.rsplit("/", 1)[1])] = body
            elif path == "/error":
                job.errors.append(body.decode(errors="replace"))
                job.done.set()
            elif path == "/log":
                job.log.append(body.decode(errors="replace"))
            elif path == "/done":
                job.done.set()
            self._send(200, b"ok", "text/plain")

    return Handler


def _scene_files(scene: str) -> tuple[str, dict[str, str]]:
    """(the URL the page loads, URL path -> local file) for a file, a SOG folder or a streamed
    SOG (its lod-meta.json, served with every file under its folder)."""
    if os.path.basename(scene) == "lod-meta.json":
        folder = os.path.dirname(os.path.abspath(scene))
        files = {}
        for here, _, names in os.walk(folder):
            for name in names:
                rel = os.path.relpath(os.path.join(here, name), folder).replace(os.sep, "/")
                files[f"/scene/{rel}"] = os.path.join(here, name)
        return "/scene/lod-meta.json", files
    if os.path.isdir(scene) or os.path.basename(scene) == "meta.json":
        folder = scene if os.path.isdir(scene) else os.path.dirname(scene)
        files = {f"/scene/{name}": os.path.join(folder, name) for name in os.listdir(folder)
                 if os.path.isfile(os.path.join(folder, name))}
        return "/scene/meta.json", files
    name = os.path.basename(scene)
    ext = ".compressed.ply" if name.lower().endswith(".compressed.ply") else os.path.splitext(name)[1].lower()
    url = f"/scene/scene{ext}"
    return url, {url: scene}


class Renderer:
    """Renders splat files with one browser per call (a fresh profile each time)."""

    def __init__(self, width: int = 512, height: int = 512, background: tuple = (0.0, 0.0, 0.0),
                 browser: Optional[str] = None, timeout: float = 600.0, max_frames: int = 120,
                 gl: Optional[str] = None) -> None:
        self.width, self.height, self.background = width, height, background
        self.gl = gl or os.environ.get("SOGS_GL") or DEFAULT_GL
        if self.gl not in GL_BACKENDS:
            raise RenderError(f"unknown WebGL back end {self.gl!r} (known: {', '.join(GL_BACKENDS)})")
        self.browser = find_browser(browser)
        self.engine = engine_dir()
        self.timeout, self.max_frames = timeout, max_frames
        self.last_log: list[str] = []

    def render(self, scene: str, views: list[View], fov: float, near: float, far: float) -> list[np.ndarray]:
        """One (H, W, 3) uint8 image per view."""
        url, files = _scene_files(scene)
        job = _Job(len(views))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(job, files, self.engine))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        spec = {"scene": url, "unified": url.endswith("/lod-meta.json"), "width": self.width, "height": self.height, "background": list(self.background),
                "fov": fov, "near": near, "far": far, "views": [asdict(v) for v in views],
                "minFrames": 3, "stableFrames": 2, "maxFrames": self.max_frames}
        page = f"http://127.0.0.1:{server.server_address[1]}/page.html#{urllib.parse.quote(json.dumps(spec))}"
        profile = tempfile.mkdtemp(prefix="sogs-chromium-")
        cmd = [self.browser, "--headless=new", "--no-sandbox", "--disable-gpu-sandbox", *GL_BACKENDS[self.gl],
               "--ignore-gpu-blocklist", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--mute-audio", f"--user-data-dir={profile}",
               f"--window-size={self.width},{self.height}", page]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            finished = job.done.wait(self.timeout)
        finally:
            proc.kill()
            proc.wait()
            server.shutdown()
            server.server_close()
            shutil.rmtree(profile, ignore_errors=True)
        self.last_log = job.log
        if job.errors:
            raise RenderError(f"{scene}: " + "; ".join(job.errors[:5]))
        if not finished or len(job.results) != len(views):
            raise RenderError(f"{scene}: the page rendered {len(job.results)} of {len(views)} views in "
                              f"{self.timeout:.0f} s (log: {'; '.join(job.log[-3:])})")
        images = []
        for v in range(len(views)):
            raw = np.frombuffer(job.results[v], np.uint8)
            if raw.size != self.width * self.height * 4:
                raise RenderError(f"{scene}: view {v} came back with {raw.size} bytes")
            images.append(raw.reshape(self.height, self.width, 4)[::-1, :, :3].copy())   # GL rows are bottom-up
        return images


def render_views(scene: str, views: list[View], fov: float, near: float, far: float, width: int = 512,
                 height: int = 512, **kwargs) -> list[np.ndarray]:
    return Renderer(width, height, **kwargs).render(scene, views, fov, near, far)


__all__ = ["ENGINE_VERSION", "RenderError", "Renderer", "engine_dir", "find_browser", "render_views"]
