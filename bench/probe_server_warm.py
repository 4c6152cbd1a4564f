"""Imported by the process server when `phase_probe.py` runs with SOGS_PROBE_PRELOAD naming it:
the Triton kernel modules imported and Triton's own key (a hash of its installed files, about
0.5 s a process at its first kernel: bench/NOTES.md, session 41) computed once in the server,
before any fork, so that each writing process inherits both. Nothing here touches CUDA."""
import importlib

for name in ("sogs_core.order.hilbert_triton", "sogs_core.order.chain_triton",
             "sogs_core.quantize.palette.triton_search", "sogs_core.render.colour_triton"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
try:
    from triton.compiler.compiler import triton_key
except ImportError:
    try:
        from triton.runtime.cache import triton_key
    except ImportError:
        triton_key = None
if triton_key is not None:
    triton_key()
