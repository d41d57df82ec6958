"""Which device to compute on: the fastest one here, or the one you name, checked.

A wrong name (`HELPERS_DEVICE=gpu`) or a device this machine lacks (`device="cuda"` on a
laptop) raises one `ValueError` that says what was asked, what is valid and what is here,
instead of PyTorch's list of twenty internal device types.
"""

import os

import torch

CHOICES = "cpu, cuda, cuda:N (N = a GPU's number) or mps"


def default_device():
    """The fastest device here: CUDA, else Apple's MPS, else the CPU.

    Set the environment variable `HELPERS_DEVICE` (e.g. `cpu`) to choose it yourself;
    the stored notebooks are executed with `HELPERS_DEVICE=cpu`.
    """
    wanted = os.environ.get("HELPERS_DEVICE")
    if wanted:
        return checked_device(wanted, source="HELPERS_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def checked_device(device, source="device"):
    """`device` (a name or a `torch.device`) as a `torch.device` that exists on this machine.

    `source` names where the value came from (an argument or an environment variable), so
    the error message points at what to change.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise ValueError(f"{source}={device!r} is not a device: use {CHOICES} "
                         f"(this machine has: {available_devices()})")
    try:
        result = torch.device(name)
    except RuntimeError:
        result = None
    if result is None or result.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{source}={device!r} is not a device: use {CHOICES} "
                         f"(this machine has: {available_devices()})")
    count = torch.cuda.device_count() if result.type == "cuda" else 0
    missing = ((result.type == "cuda" and (count == 0 or (result.index or 0) >= count))
               or (result.type == "mps" and not torch.backends.mps.is_available()))
    if missing:
        raise ValueError(f"{source}={device!r}: this machine has no such device (it has: "
                         f"{available_devices()}); use one of those, or leave it unset")
    return result


def available_devices():
    """What this machine can compute on, in words: `cpu`, `cuda:0 (its name)`, `mps`."""
    found = ["cpu"]
    for i in range(torch.cuda.device_count()):
        found.append(f"cuda:{i} ({torch.cuda.get_device_name(i)})")
    if torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)
