"""The private MPS server of a streamed SOG's writing processes (`streamed.mps`), driven through a
stand-in for nvidia-cuda-mps-control that behaves as the real one does at its edges: `-f` opens
the control socket in the pipe folder and runs until `quit` arrives on another invocation's
stdin. A GPU proves the rest (bench/gpu_s42c.sh)."""
from __future__ import annotations

import multiprocessing
import os
import stat
import time

import pytest

from sogs_core.pipeline.streamed import mps as mps_mod
from sogs_core.pipeline.streamed.mps import LOG_VARIABLE, PIPE_VARIABLE, MpsTicket, PrivateMps, mps_available

STAND_IN = """#!/bin/sh
if [ "$1" = "-f" ]; then
  {open_socket}
  while [ ! -e "$CUDA_MPS_PIPE_DIRECTORY/quit" ]; do sleep 0.02; done
  exit 0
fi
read cmd
[ "$cmd" = quit ] && : > "$CUDA_MPS_PIPE_DIRECTORY/quit"
"""


@pytest.fixture
def control(tmp_path, monkeypatch):
    """A stand-in control program first on PATH, no MPS set up in this process's environment;
    `control(opens_socket)` writes it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv(PIPE_VARIABLE, raising=False)
    monkeypatch.delenv(LOG_VARIABLE, raising=False)

    def write(opens_socket: bool = True) -> str:
        path = folder / mps_mod.MPS_CONTROL
        path.write_text(STAND_IN.format(open_socket=': > "$CUDA_MPS_PIPE_DIRECTORY/control"' if opens_socket else ":"))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    yield write
    os.environ.pop(PIPE_VARIABLE, None)
    os.environ.pop(LOG_VARIABLE, None)


def test_a_proven_server_is_joined_then_quit_and_its_folders_removed(control):
    """The daemon runs with private folders, the probe sees them, a process that joins takes
    them into its environment; `stop` makes the daemon quit and removes the folders."""
    control()
    seen = []
    server = PrivateMps(0, multiprocessing.get_context("spawn"), probe=lambda env: seen.append(env[PIPE_VARIABLE]) or True)
    try:
        assert server.ticket.join(timeout=10)
        assert server.used and seen == [server.ticket.pipe]
        assert os.environ[PIPE_VARIABLE] == server.ticket.pipe and os.environ[LOG_VARIABLE] == server.ticket.log
        assert server.ticket.pipe.startswith(server.folder) and server.proc.poll() is None
    finally:
        server.stop()
    assert server.proc.returncode == 0 and not os.path.exists(server.folder)


def test_a_failed_probe_or_a_silent_daemon_leaves_cuda_alone(control, monkeypatch):
    """Where the probe cannot make a context through the daemon, or the daemon never opens its
    socket, the verdict is no: the environment stays as it was, and the daemon is still quit."""
    control()
    server = PrivateMps(0, multiprocessing.get_context("spawn"), probe=lambda env: False)
    assert not server.ticket.join(timeout=10) and not server.used and PIPE_VARIABLE not in os.environ
    server.stop()
    assert server.proc.returncode is not None and not os.path.exists(server.folder)

    control(opens_socket=False)
    monkeypatch.setattr(mps_mod, "SOCKET_WAIT_S", 0.3)
    probed = []
    t0 = time.monotonic()
    server = PrivateMps(0, multiprocessing.get_context("spawn"), probe=lambda env: probed.append(1) or True)
    assert not server.ticket.join(timeout=10) and probed == [] and time.monotonic() - t0 < 5
    server.stop()
    assert not os.path.exists(server.folder)


def test_no_server_without_the_control_program_or_beside_an_mps_already_set(control, monkeypatch, tmp_path):
    """mps_available: the program on PATH and no MPS chosen already (the processes inherit that
    one); a server asked for without the program says no at once."""
    path = control()
    assert mps_available()
    monkeypatch.setenv(PIPE_VARIABLE, str(tmp_path))
    assert not mps_available()
    monkeypatch.delenv(PIPE_VARIABLE)
    os.remove(path)
    assert not mps_available()
    server = PrivateMps(0, multiprocessing.get_context("spawn"), probe=lambda env: True)
    assert server.proc is None and not server.ticket.join(timeout=10)
    server.stop()


def _joined(ticket: MpsTicket, out) -> None:
    out.put((ticket.join(timeout=30), os.environ.get(PIPE_VARIABLE)))


def test_a_spawned_writing_process_joins_through_its_ticket(control):
    """The ticket travels into a spawned process (as `WritingProcesses` hands it over) and the
    verdict reaches it there."""
    control()
    ctx = multiprocessing.get_context("spawn")
    server = PrivateMps(0, ctx, probe=lambda env: True)
    out = ctx.Queue()
    child = ctx.Process(target=_joined, args=(server.ticket, out))
    try:
        child.start()
        assert out.get(timeout=60) == (True, server.ticket.pipe)
        child.join(30)
        assert PIPE_VARIABLE not in os.environ          # only the process that joined changed
    finally:
        server.stop()


@pytest.mark.parametrize("flag, want", [((), None), (("--no-mps",), False)])
def test_the_cli_hands_its_mps_choice_to_the_writer(tmp_path, monkeypatch, flag, want):
    """compress leaves MPS to the library's default unless --no-mps says without."""
    import sogs_core.pipeline.streamed as streamed
    from sogs_cli.main import main

    from .conftest import make_scene
    from sogs_core.formats.ply.write import write_ply

    given = {}

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        given.update(kwargs)
        raise Stop

    monkeypatch.setattr(streamed, "write_streamed", spy)
    write_ply(tmp_path / "in.ply", make_scene(500, 0, seed=1))
    with pytest.raises(Stop):
        main(["compress", str(tmp_path / "in.ply"), str(tmp_path / "out" / "lod-meta.json"), "--device", "cpu",
              "-q", *flag])
    assert given["mps"] is want
