"""For device experiments only (bench/gpu_s38.sh): with this folder on PYTHONPATH, every Python
process (the streamed writer's spawned ones too) caps its CUDA caching allocator at
SOGS_EXP_MEM_CAP_MB when CUDA starts (torch.cuda.set_per_process_memory_fraction), so that
several processes can share a GPU within a memory bound; unset, it does nothing."""
import os

_cap = os.environ.get("SOGS_EXP_MEM_CAP_MB")
if _cap:
    import torch

    def _set_cap() -> None:
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, float(_cap) * 2**20 / total))

    torch.cuda._lazy_call(_set_cap)
