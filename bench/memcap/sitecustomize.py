"""For device experiments only (bench/gpu_s38.sh): with this folder on PYTHONPATH, every Python
process (the streamed writer's spawned ones and its planner too) caps its CUDA caching allocator
at SOGS_EXP_MEM_CAP_MB when CUDA starts, through the writer's own `cap_gpu_memory` (which caps
only the spawned processes); unset, it does nothing."""
import os

_cap = os.environ.get("SOGS_EXP_MEM_CAP_MB")
if _cap:
    import torch

    def _set_cap() -> None:
        from sogs_core.pipeline.streamed.processes import cap_gpu_memory

        cap_gpu_memory(f"cuda:{torch.cuda.current_device()}", int(float(_cap)))

    torch.cuda._lazy_call(_set_cap)
