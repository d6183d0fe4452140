"""Training, fine-tuning and evaluation, separate from the models (see engine.py)."""
from .config import TRAINABLE_SCOPES, TrainConfig
from .device import resolve_device
from .engine import TrainingCancelled, TrainResult, apply_trainable, train
from .evaluate import EvalResult, evaluate
from .finetune import FinetuneResult, finetune, save_run, train_from_scratch
