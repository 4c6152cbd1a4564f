"""A private CUDA MPS server for the processes that write one streamed SOG on a GPU.

Why: without MPS a GPU runs one process's kernels at a time and switches between the processes'
contexts; each writing process launches many small kernels, and with three of them sharing an
H100 by turns the 32M write ran a fifth slower than with their kernels side by side under MPS
(bench/NOTES.md, session 42).

How: `nvidia-cuda-mps-control -f` runs as this process's child with pipe and log folders of its
own, so only the processes told those folders connect to it and nothing else on the machine
changes; a probe process connects once, which proves that the server starts; the writing
processes take the folders into their environment before their first CUDA call
(`MpsTicket.join`). Where any step fails the processes run as they would without it (CUDA
itself runs without MPS where it finds no daemon). `stop` quits the daemon and its server and
removes the folders; the daemon is also sent SIGTERM if the thread that started it dies.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from sogs_core.pipeline.streamed.parent_death import death_signal_for_exec

#: the control program (with the NVIDIA driver's utilities, usually on PATH)
MPS_CONTROL = "nvidia-cuda-mps-control"
#: the environment variables through which CUDA finds a daemon
PIPE_VARIABLE, LOG_VARIABLE = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
#: seconds the daemon has to open its control socket, the probe to connect, a writing process
#: to wait for the verdict (they overlap its import of torch, which takes longer)
SOCKET_WAIT_S, PROBE_TIMEOUT_S, VERDICT_WAIT_S = 5.0, 60.0, 90.0

#: a context made on the device through the daemon: exit 0 if CUDA made it
_PROBE = """
import ctypes, sys
cu = ctypes.CDLL("libcuda.so.1")
dev, ctx = ctypes.c_int(), ctypes.c_void_p()
ok = (cu.cuInit(0) == 0 and cu.cuDeviceGet(ctypes.byref(dev), int(sys.argv[1])) == 0
      and cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0)
sys.exit(0 if ok else 1)
"""


def mps_available() -> bool:
    """Whether this machine could start a private MPS server: Linux, the control program found,
    and no MPS already chosen for this process (its variables set: the processes inherit those)."""
    return sys.platform.startswith("linux") and shutil.which(MPS_CONTROL) is not None \
        and PIPE_VARIABLE not in os.environ


@dataclass
class MpsTicket:
    """What a writing process needs to join the server (picklable into a spawned process): the
    folders, and the verdict once the probe has one (`ready` set; `ok` nonzero: join)."""

    pipe: str
    log: str
    ready: Any           # multiprocessing Event
    ok: Any              # multiprocessing Value("b")

    def join(self, timeout: float = VERDICT_WAIT_S) -> bool:
        """Called before this process's first CUDA call: the server's folders put into its
        environment if the probe proved the server, else nothing (CUDA as without MPS)."""
        if not self.ready.wait(timeout) or not self.ok.value:
            return False
        os.environ[PIPE_VARIABLE] = self.pipe
        os.environ[LOG_VARIABLE] = self.log
        return True


def probe_device(index: int, env: dict) -> bool:
    """Whether a process with `env` makes a CUDA context on device `index` (through the daemon)."""
    try:
        return subprocess.run([sys.executable, "-c", _PROBE, str(index)], env=env, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class PrivateMps:
    """The daemon started at once (from the calling thread: its death signal follows that
    thread), its socket awaited and the probe run on a thread of its own, the verdict handed to
    `ticket`'s holders; `ctx` is the multiprocessing context the writing processes are started
    from. `probe(env) -> bool` replaces the device probe (tests)."""

    def __init__(self, device_index: int, ctx, probe: Optional[Callable[[dict], bool]] = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="sogs-mps-")
        pipe, log = os.path.join(self.folder, "pipe"), os.path.join(self.folder, "log")
        os.makedirs(pipe)
        os.makedirs(log)
        self.env = {**os.environ, PIPE_VARIABLE: pipe, LOG_VARIABLE: log}
        self.ticket = MpsTicket(pipe, log, ctx.Event(), ctx.Value("b", 0))
        self.control = shutil.which(MPS_CONTROL, path=self.env.get("PATH"))
        self.probe = probe or (lambda env: probe_device(device_index, env))
        self.proc: Optional[subprocess.Popen] = None
        try:
            if self.control is not None:
                self.proc = subprocess.Popen([self.control, "-f"], env=self.env, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             preexec_fn=death_signal_for_exec())
        except OSError:
            self.proc = None
        self.thread = threading.Thread(target=self._verdict, name="sogs-mps-probe", daemon=True)
        self.thread.start()

    def _verdict(self) -> None:
        ok = False
        try:
            ok = self.proc is not None and self._socket_opened() and self.probe(self.env)
        finally:
            self.ticket.ok.value = int(ok)
            self.ticket.ready.set()

    @property
    def used(self) -> bool:
        """Whether the probe proved the server (the processes join it)."""
        return bool(self.ticket.ok.value)

    def _socket_opened(self) -> bool:
        """The daemon's control socket appeared in its pipe folder (and the daemon still runs)."""
        control = os.path.join(self.ticket.pipe, "control")
        end = time.monotonic() + SOCKET_WAIT_S
        while time.monotonic() < end:
            if os.path.exists(control):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        """The daemon and its server quit (killed if they do not within seconds), the folders
        removed. Call once the processes that joined have ended."""
        self.thread.join(PROBE_TIMEOUT_S + SOCKET_WAIT_S)
        if self.proc is not None and self.proc.poll() is None:
            try:
                subprocess.run([self.control], input=b"quit\n", env=self.env, timeout=10,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.SubprocessError):
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
