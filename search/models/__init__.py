"""BLIP-2 models: the only place torch and transformers are imported."""

from .engine import Blip2Engine, Question
from .vision import ImageBatch

__all__ = ["Blip2Engine", "ImageBatch", "Question"]
