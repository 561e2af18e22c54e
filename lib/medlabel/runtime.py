"""Device choice and mixed precision, in one place for every kind."""

from contextlib import nullcontext
from typing import Literal

import torch

Precision = Literal["auto", "float32", "bfloat16"]

_cpu_precision: Precision = "auto"


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


def set_cpu_precision(precision: Precision) -> None:
    """Chosen once per server (and training) process from ``--conf cpu_precision``, which an app parses."""
    global _cpu_precision
    _cpu_precision = precision


def cpu_bfloat16() -> bool:
    """True when CPU inference runs under bfloat16 autocast: asked for, or ``auto`` on a CPU whose oneDNN
    has native bfloat16 (AVX512-BF16 or AMX), where 3D convolutions run 2-3x faster than in float32."""
    if _cpu_precision == "auto":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return _cpu_precision == "bfloat16"


def autocast(device: torch.device):
    """Inference autocast: float16 on CUDA (AMP); bfloat16 on CPUs with native support (see ``cpu_bfloat16``),
    else none, since emulated reduced precision only slows 3D convolutions down."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if cpu_bfloat16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()
