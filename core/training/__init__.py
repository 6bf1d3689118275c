"""The training engine: config, optimizer and schedules, loss, monitor, trainer, torchrun support.

``from core.training import TrainingConfig`` is cheap; the trainer itself is imported from ``core.training.trainer``.
"""
from core.training.config import TrainingConfig, TrainSection

__all__ = ["TrainingConfig", "TrainSection"]
