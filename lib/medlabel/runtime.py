"""Device choice and mixed precision, in one place for every kind."""

from contextlib import nullcontext

import torch


def pick_device(requested: object, default: str = "auto") -> torch.device:
    """``cuda`` when asked for (or ``auto``) and present, else the CPU; never fails for lack of a GPU.

    Anything but a string (clients sometimes echo a config's list of choices) means the default.
    """
    name = (requested if isinstance(requested, str) and requested else default or "auto").lower()
    if name.startswith("cuda") and torch.cuda.is_available():
        return torch.device(name)
    if name == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def autocast(device: torch.device):
    """float16 autocast on CUDA (AMP); a no-op on the CPU, where it would only slow 3D convolutions."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()
