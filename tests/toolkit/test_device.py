"""``toolkit._device``: ``cuda:N`` parsed into an index and entered as torch's current device."""

from __future__ import annotations

import pytest
import torch

from toolkit._device import device_index, device_kind, on_device, strict_fp32
from toolkit.errors import InvalidArgumentError


def test_device_index_and_kind() -> None:
    assert device_index("cpu") is None
    assert device_index("cuda:1") == 1 and device_index("cuda:12") == 12
    assert (device_kind("cpu"), device_kind("cuda"), device_kind("cuda:3")) == ("cpu", "cuda", "cuda")
    for bad in ("gpu:1", "cuda:x", "cuda:-1", "mps"):
        with pytest.raises(InvalidArgumentError, match="unknown device") as info:
            device_index(bad)
        assert info.value.param == "device" and info.value.exit_code == 2


def test_on_the_cpu_nothing_is_entered() -> None:
    with on_device("cpu") as index:
        assert index is None
    # a CPU run never initialises CUDA (it may not exist)
    assert not torch.cuda.is_initialized()


def test_strict_fp32_turns_tf32_off_and_restores_it() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    precision = torch.get_float32_matmul_precision()
    with strict_fp32():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert torch.get_float32_matmul_precision() == precision


@pytest.mark.gpu
def test_cuda_n_is_current_inside_and_restored_after() -> None:
    last = torch.cuda.device_count() - 1
    before = torch.cuda.current_device()
    with on_device(f"cuda:{last}") as index:
        assert index == last == torch.cuda.current_device()
        # what a runner creates inside belongs to that device
        assert torch.cuda.current_stream().device == torch.device("cuda", last)
    assert torch.cuda.current_device() == before
    with on_device("cuda") as index:
        assert index == before
