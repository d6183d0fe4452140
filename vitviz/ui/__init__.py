"""The Streamlit side of vitviz: cached resources and shared widgets. The only streamlit-aware package;
pages import from here and from the library, never from torch directly."""
from .navigation import ensure_app_navigation
from .state import (captured, checkpoint_dir, checkpoints_table, device, device_label, load_model, test_set,
                    test_set_missing_note)
from .widgets import choose_checkpoint, choose_checkpoints, choose_image, pick_checkpoint, show_figure, show_table

__all__ = ["captured", "checkpoint_dir", "checkpoints_table", "device", "device_label", "ensure_app_navigation",
           "load_model", "test_set", "test_set_missing_note", "choose_checkpoint", "choose_checkpoints",
           "choose_image", "pick_checkpoint", "show_figure", "show_table"]
