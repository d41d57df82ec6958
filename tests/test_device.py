"""Device choice: the fastest device by default, and one clear line for a wrong one."""

import pytest
import torch
from torch import nn

from helpers import default_device, load_fashion_mnist, train
from helpers.device import available_devices, checked_device

NO_CUDA = not torch.cuda.is_available()


def test_default_device_honours_the_environment(monkeypatch):
    monkeypatch.setenv("HELPERS_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("HELPERS_DEVICE", " CPU ")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv("HELPERS_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert default_device().type == expected


@pytest.mark.parametrize("bad", ["gpu", "meta", "cuda:x", "tpu", ""])
def test_an_unknown_helpers_device_names_the_variable_the_choices_and_this_machine(
        bad, monkeypatch):
    monkeypatch.setenv("HELPERS_DEVICE", bad or "  ")
    with pytest.raises(ValueError) as info:
        default_device()
    message = str(info.value)
    assert message.startswith("HELPERS_DEVICE=")
    assert "cpu, cuda, cuda:N" in message and "mps" in message
    assert f"this machine has: {available_devices()}" in message
    assert "\n" not in message and "xla" not in message      # not PyTorch's long list


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_says_what_the_machine_has(monkeypatch):
    with pytest.raises(ValueError, match=r"^device='cuda': this machine has no such device "
                                         r"\(it has: cpu"):
        checked_device("cuda")
    monkeypatch.setenv("HELPERS_DEVICE", "cuda")
    with pytest.raises(ValueError, match=r"^HELPERS_DEVICE='cuda': this machine has no such"):
        default_device()


def test_a_gpu_number_beyond_the_gpus_here_is_refused():
    with pytest.raises(ValueError, match="no such device"):
        checked_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_asked_for_without_mps_is_refused():
    with pytest.raises(ValueError, match="no such device"):
        checked_device("mps")


def test_load_and_train_check_their_device_argument():
    with pytest.raises(ValueError, match=r"^device='gpu' is not a device"):
        load_fashion_mnist(64, device="gpu")
    train_iter, test_iter = load_fashion_mnist(64, num_train=64, device="cpu")
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"^device='gpu' is not a device"):
        train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 1,
              torch.optim.SGD(net.parameters(), lr=0.1), device="gpu", plot=False)


def test_a_torch_device_passes_through():
    assert checked_device(torch.device("cpu")) == torch.device("cpu")
