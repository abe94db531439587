"""Training an inference-free sparse encoder: IDF-aware FLOPS and heterogeneous ensemble distillation.

Depends on ``model``, ``data``, ``idf``, ``search`` and ``evaluate``; nothing outside depends on it.
"""

from idfsplade.train.config import RunConfig, load_config
from idfsplade.train.trainer import train

__all__ = ["RunConfig", "load_config", "train"]
