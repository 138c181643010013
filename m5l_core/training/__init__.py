"""Offline multi-domain training of the M5L network (``m5l-train``).

Public API::

    TrainConfig, DataConfig, SamplingConfig, OptimConfig, load_train_config(path, overrides)
    train(config, out_dir, *, resume=False, sequences=None, context=None) -> summary dict
    build_batch(domains, step, rank, world_size, seed, sampling, preprocess) -> FrameBatch
    make_domains(sequences, min_box_side), domain_for_step(step, rank, world_size, num_domains, seed)
"""

from m5l_core.training.config import DataConfig, OptimConfig, SamplingConfig, TrainConfig, load_train_config
from m5l_core.training.data import FrameBatch, build_batch, domain_for_step, make_domains
from m5l_core.training.loop import train

__all__ = ["DataConfig", "FrameBatch", "OptimConfig", "SamplingConfig", "TrainConfig", "build_batch",
           "domain_for_step", "load_train_config", "make_domains", "train"]
