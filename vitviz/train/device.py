"""Moved to `vitviz.device` (device choice is neither training's nor inspection's); kept for one release."""
from ..device import autocast, cpu_bf16_supported, device_name, resolve_device  # noqa: F401
