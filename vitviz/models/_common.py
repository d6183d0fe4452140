"""Helpers shared by the model files: timm's create_model passes hub arguments we do not use."""
from __future__ import annotations

HUB_ARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def drop_hub_args(variant: str, pretrained: bool, kwargs: dict) -> dict:
    """Refuse pretrained=True (vitviz weights come from checkpoints, never a hub) and drop the
    hub-only kwargs timm.create_model forwards to every entry point."""
    if pretrained:
        raise ValueError(f"{variant} has no downloadable weights; load a trained checkpoint with "
                         "vitviz.checkpoints.load(path) instead")
    return {k: v for k, v in kwargs.items() if k not in HUB_ARGS}
