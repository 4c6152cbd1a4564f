"""Shared fixtures: synthetic scenes (the project's shared generator when it is beside the
checkout, else our own), the shared reference SOGs, and a small fast PLAS schedule."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
sys.path.insert(0, ROOT)

from sogs_core.settings import PlasConfig  # noqa: E402
from sogs_core.model.splats import Splats  # noqa: E402

#: a coarser radius schedule: same algorithm, about 4x fewer levels; for tests whose bounds do
#: not depend on sort quality (quantization bounds hold for any order)
FAST_PLAS = PlasConfig(radius_decay=0.8, improvement_break=1e-3, fine_radius=0, mid_radius=0, coarse_radius=0)


def shared_path(*parts: str) -> str:
    return os.path.join(SHARED, *parts)


def run_in_triton_interpreter(code: str, *args: str) -> str:
    """Run `code` (with `args` as sys.argv[1:]) in a fresh Python with TRITON_INTERPRET=1
    (Triton kernels on this CPU, set before Triton imports) from the repository root; returns
    its last line of output."""
    import subprocess

    env = dict(os.environ, TRITON_INTERPRET="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip().splitlines()[-1]


def make_scene(n: int, sh: int, seed: int = 7) -> Splats:
    """A synthetic scene from ../shared/bench/synth_scene.py (the benchmark generator)."""
    gen = shared_path("bench", "synth_scene.py")
    if os.path.isfile(gen):
        sys.path.insert(0, os.path.dirname(gen))
        from synth_scene import synth_scene  # type: ignore

        s = synth_scene(n, seed=seed, sh_degree=sh)
        f32 = np.float32
        return Splats(s["pos"].astype(f32), s["rot"].astype(f32), s["scale"].astype(f32),
                      s["f_dc"].astype(f32), s["opacity"].astype(f32), s["f_rest"].astype(f32))
    from sogs_core.model.synth import synthetic_scene

    return synthetic_scene(n, sh, seed)


@pytest.fixture
def scene_factory():
    return make_scene


# One fresh-clone CI run passed every test and then crashed (SIGSEGV) while the interpreter tore
# down native libraries (Ray, torch, moto threads). The result is known once pytest has reported:
# end the process there, with pytest's own exit status, so the teardown cannot turn a green run red.
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "status" in _SESSION:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])
