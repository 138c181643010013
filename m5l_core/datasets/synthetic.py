"""Seeded synthetic RGB-T sequences with switchable, recorded challenges.

No benchmark images can be downloaded on the project's machines, so tests, training demos and
benchmarks use sequences made here. A sequence shows a textured background (optionally seen
by a moving camera), a textured target with its own heat signature, and on request: RGB-only
and thermal-only look-alike distractors, partial and heavy occlusion, low illumination,
thermal crossover, fast motion, motion blur, scale change, deformation and a thermal-vs-RGB
misalignment (so the two ground truths differ as in the real benchmarks).

Python API::

    seq = generate_sequence(SyntheticConfig(width=160, height=120, n_frames=20), seed=3,
                            challenges=("occlusion", "misalignment"))
    seq.rgb[0]          # HxWx3 uint8, RGB order
    seq.thermal[0]      # HxW uint8 (uint16 with thermal_bits=16)
    seq.gt_rgb, seq.gt_thermal, seq.attributes["PO"]
    write_dataset("data/synth", "gtot", n_sequences=4, n_frames=300, seed=0)

The same seed gives byte-identical files. See :mod:`m5l_core.datasets.synthetic_writer` for
the files written and :mod:`m5l_core.datasets.synthetic_attributes` for the flag rules.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.config import ConfigError, to_dict
from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.datasets.synthetic_appearance import make_scene_look
from m5l_core.datasets.synthetic_attributes import (
    frame_attributes,
    gtot_sequence_flags,
    rgbt234_sequence_flags,
)
from m5l_core.datasets.synthetic_config import (
    CHALLENGES,
    GTOT_ATTRIBUTES,
    LAYOUTS,
    RGBT234_ATTRIBUTES,
    SyntheticConfig,
    validate_challenges,
)
from m5l_core.datasets.synthetic_render import FrameRenderer
from m5l_core.datasets.synthetic_scene import ScenePlan, plan_scene, stream
from m5l_core.datasets.synthetic_writer import (
    FORMAT_VERSION,
    METADATA_FILE,
    SequenceWriter,
    check_existing,
    frame_names,
    ground_truth_files,
    metadata_text,
    tag_files,
    write_dataset_index,
)

__all__ = [
    "CHALLENGES",
    "GTOT_ATTRIBUTES",
    "LAYOUTS",
    "RGBT234_ATTRIBUTES",
    "SyntheticConfig",
    "SyntheticSequence",
    "draw_challenges",
    "generate_sequence",
    "sequence_seed",
    "write_dataset",
]


@dataclass(frozen=True)
class SyntheticSequence:
    """One generated sequence. ``rgb``/``thermal`` are empty when frames were not kept.

    ``attributes`` holds per-frame boolean arrays for the 12 RGBT234 attributes;
    ``gtot_attributes`` the 7 GTOT sequence-level flags. ``path`` is the sequence directory
    when it was written.
    """

    name: str
    seed: int
    challenges: tuple[str, ...]
    config: SyntheticConfig
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray
    attributes: dict[str, np.ndarray]
    gtot_attributes: dict[str, bool]
    misalignment: tuple[int, int]
    rgb: list[np.ndarray] = field(default_factory=list)
    thermal: list[np.ndarray] = field(default_factory=list)
    layout: str = "gtot"
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.gt_rgb)

    def to_sequence(self) -> Sequence:
        """The project-wide :class:`Sequence` (frame paths only when written to disk)."""
        rgb_frames: tuple[Path, ...] = ()
        thermal_frames: tuple[Path, ...] = ()
        if self.path is not None:
            names = [frame_names(self.layout, self.config.thermal_bits, i) for i in range(len(self))]
            rgb_frames = tuple(self.path / rgb for rgb, _ in names)
            thermal_frames = tuple(self.path / thermal for _, thermal in names)
        if self.layout == "gtot":
            attributes = {code: np.array([flag]) for code, flag in self.gtot_attributes.items()}
        else:
            attributes = dict(self.attributes)
        return Sequence(name=self.name, benchmark=self.layout, rgb_frames=rgb_frames,
                        thermal_frames=thermal_frames, gt_rgb=self.gt_rgb, gt_thermal=self.gt_thermal,
                        init_box=self.gt_rgb[0].copy(), attributes=attributes, root=self.path)


def sequence_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th sequence of a dataset made with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def draw_challenges(config: SyntheticConfig, seed: int) -> tuple[str, ...]:
    """The default mix: each challenge on with ``config.challenge_probability``."""
    rng = stream(seed, "challenge-mix")
    draws = rng.random(len(CHALLENGES))
    return tuple(c for c, u in zip(CHALLENGES, draws, strict=True) if u < config.challenge_probability)


def _check_arguments(layout: str, seed: int) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (choose one of {', '.join(LAYOUTS)})")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")


def _metadata(config: SyntheticConfig, seed: int, challenges: tuple[str, ...], name: str,
              layout: str) -> dict:
    return {"generator": __name__, "format_version": FORMAT_VERSION, "name": name, "layout": layout,
            "seed": int(seed), "challenges": list(challenges), "config": to_dict(config)}


def _finish_metadata(metadata: dict, plan: ScenePlan, attributes: dict[str, np.ndarray]) -> dict:
    extra = {"frames": plan.n_frames, "misalignment_px": list(plan.offset),
             "sequence_attributes": (gtot_sequence_flags(attributes) if metadata["layout"] == "gtot"
                                     else rgbt234_sequence_flags(attributes))}
    return {**metadata, **extra}


def default_workers() -> int:
    """Threads that encode frames: a few, never more than the machine has cores."""
    return max(1, min(4, os.cpu_count() or 1))


def _render(config: SyntheticConfig, seed: int, challenges: tuple[str, ...], name: str, layout: str,
            out_dir: Path | None, keep_frames: bool, bar: tqdm | None, workers: int) -> SyntheticSequence:
    plan = plan_scene(config, seed, challenges)
    margin = plan.margin
    canvas_h, canvas_w = config.height + 2 * margin, config.width + 2 * margin
    look = make_scene_look(config, stream(seed, "look"), canvas_h, canvas_w)
    renderer = FrameRenderer(config, plan, look, seed)
    attributes = frame_attributes(config, plan)
    writer = None
    if out_dir is not None:
        writer = SequenceWriter(out_dir / name, config.jpeg_quality, config.png_compression, workers)
    rgb_frames, thermal_frames = [], []
    try:
        for frame in range(plan.n_frames):
            rgb, thermal = renderer.render(frame)
            if writer is not None:
                writer.write_frame(frame_names(layout, config.thermal_bits, frame), rgb, thermal)
            if keep_frames:
                rgb_frames.append(rgb)
                thermal_frames.append(thermal)
            if bar is not None:
                bar.update(1)
        gt_rgb, gt_thermal = plan.target.astype(np.float64), plan.thermal_target.astype(np.float64)
        path = None
        if writer is not None:
            metadata = _finish_metadata(_metadata(config, seed, challenges, name, layout), plan, attributes)
            texts = {**ground_truth_files(layout, gt_rgb, gt_thermal), **tag_files(layout, attributes),
                     METADATA_FILE: metadata_text(metadata)}
            path = writer.finish(texts)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return SyntheticSequence(name=name, seed=int(seed), challenges=challenges, config=config, gt_rgb=gt_rgb,
                             gt_thermal=gt_thermal, attributes=attributes,
                             gtot_attributes=gtot_sequence_flags(attributes), misalignment=plan.offset,
                             rgb=rgb_frames, thermal=thermal_frames, layout=layout, path=path)


def generate_sequence(config: SyntheticConfig | None = None, seed: int = 0,
                      challenges: Iterable[str] | None = None, out_dir: str | Path | None = None,
                      name: str = "synth_0000", layout: str = "gtot", keep_frames: bool = True,
                      progress: bool = False, workers: int | None = None) -> SyntheticSequence:
    """Render one sequence; with ``out_dir`` also write ``<out_dir>/<name>`` in ``layout``.

    ``challenges=None`` draws the default mix from the seed; ``()`` gives a clean sequence.
    An existing ``<out_dir>/<name>`` is an error (``write_dataset`` is the resumable entry).
    """
    config = config or SyntheticConfig()
    _check_arguments(layout, seed)
    chosen = draw_challenges(config, seed) if challenges is None else validate_challenges(challenges)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and (out / name).exists():
        raise DatasetError(f"{out / name} already exists")
    bar = tqdm(total=config.n_frames, desc=name, unit="frame", disable=not progress, leave=False)
    with bar:
        return _render(config, seed, chosen, name, layout, out, keep_frames, bar,
                       workers or default_workers())


def write_dataset(out: str | Path, layout: str = "gtot", n_sequences: int = 4, n_frames: int = 300,
                  seed: int = 0, challenges: Iterable[str] | None = None,
                  config: SyntheticConfig | None = None, progress: bool = True,
                  workers: int | None = None) -> list[Path]:
    """Write ``n_sequences`` sequences ``synth_0000 ...`` under ``out`` and the index files.

    Sequences that already exist with the same settings are skipped (a rerun resumes an
    interrupted run); one made with other settings is an error naming its ``synthetic.json``.
    """
    _check_arguments(layout, seed)
    if n_sequences < 1:
        raise ConfigError(f"n_sequences must be at least 1, got {n_sequences}")
    config = dataclasses.replace(config or SyntheticConfig(), n_frames=n_frames)
    fixed = None if challenges is None else validate_challenges(challenges)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"synth_{index:04d}" for index in range(n_sequences)]
    flags: dict[str, dict[str, bool]] = {}
    bar = tqdm(total=n_sequences * n_frames, desc="m5l-synth", unit="frame", disable=not progress)
    with bar:
        for index, name in enumerate(names):
            seed_i = sequence_seed(seed, index)
            chosen = draw_challenges(config, seed_i) if fixed is None else fixed
            bar.set_postfix_str(name)
            if (out / name).exists():
                found = check_existing(out / name, _metadata(config, seed_i, chosen, name, layout))
                flags[name] = found["sequence_attributes"]
                bar.update(n_frames)
                continue
            made = _render(config, seed_i, chosen, name, layout, out, keep_frames=False, bar=bar,
                           workers=workers or default_workers())
            flags[name] = (made.gtot_attributes if layout == "gtot"
                           else rgbt234_sequence_flags(made.attributes))
    write_dataset_index(out, layout, names, flags)
    return [out / name for name in names]
