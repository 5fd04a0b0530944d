"""Which torch device a command, the trainer or the node runs on (one rule everywhere)."""
from __future__ import annotations

import torch

from bwdp_core.errors import ConfigError

# The device names a setting accepts (the node's `device` parameter, `bwdp replay --device`, train.device);
# resolve_device below also takes ``cuda:N`` (torchrun ranks, scripts).
DEVICES = ("auto", "cuda", "cpu")


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:local_rank`` when torch sees a GPU, else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N`` as named.

    ``cuda`` (or ``cuda:N``) without a usable GPU, or any other name, is a ConfigError that says what to use instead.
    """
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if preference == "auto" or preference == "cuda":
        index = local_rank
    elif preference.startswith("cuda:") and preference[5:].isdigit():
        index = int(preference[5:])
    else:
        raise ConfigError(f"device {preference!r} is not one of auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {preference!r} was requested but torch sees no CUDA GPU (use auto or cpu)")
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device cuda:{index} does not exist ({torch.cuda.device_count()} GPU(s) visible); "
                          "with torchrun use --nproc_per_node <= the number of GPUs")
    return torch.device("cuda", index)
