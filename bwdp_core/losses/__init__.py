"""Loss terms of the bidirectional weighted loss with feature perception (one module per paper equation)."""

from bwdp_core.losses.config import PRESETS, LossConfig, loss_config  # noqa: F401
