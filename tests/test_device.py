"""Choosing the device and asking PyTorch's CUDA allocator for expandable segments: a user's own
allocator setting always wins."""
from __future__ import annotations

import pytest
import torch

from sogs_core.model import device


@pytest.mark.parametrize("variable", device.ALLOCATOR_VARIABLES)
def test_users_allocator_setting_is_kept(monkeypatch, variable):
    for v in device.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, "max_split_size_mb:128")
    assert device.prefer_expandable_segments() is False
    assert device.os.environ[variable] == "max_split_size_mb:128"
    assert sum(v in device.os.environ for v in device.ALLOCATOR_VARIABLES) == 1


def test_expandable_segments_asked_for_where_unset(monkeypatch):
    for v in device.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert device.prefer_expandable_segments() is True
    assert device.os.environ["PYTORCH_CUDA_ALLOC_CONF"] == device.ALLOCATOR_SETTINGS
    assert device.prefer_expandable_segments() is False          # set once; the second call keeps it


def test_cuda_refused_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="--device cuda"):
        device.resolve_device("cuda")
    assert device.resolve_device("auto").type == "cpu"
