"""Generate the training mix (``dataset: mix``) as RGBT234-layout sequences, one domain each.

Output (``out``)::

    mix.json                      the settings the folder was made with (all but the counts)
    list.txt                      every sequence of the current config, in order
    <source>_<nnnn>/              visible/00001v.jpg ..., infrared/00001i.jpg ..., visible.txt,
                                  infrared.txt, init.txt (x,y,w,h), source.json (inputs used)
    synthetic_<nnnn>/             the synthetic generator's own RGBT234 sequence (+ synthetic.json)

Sequence ``i`` of a source depends only on (seed, source, i) and the source's settings, so a
rerun skips finished sequences (each is written to ``.<name>.partial`` and renamed when
complete), raising a count adds sequences, and lowering one drops them from ``list.txt``. A
folder made with other settings is refused, naming the first setting that differs.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.atomic import atomic_write_text
from m5l_core.config import ConfigError, to_dict
from m5l_core.datasets.mix_aligned import AlignedPairsSource
from m5l_core.datasets.mix_config import SOURCE_NAMES, MixConfig, MixSyntheticConfig
from m5l_core.datasets.mix_paste import PasteSource
from m5l_core.datasets.mix_photo import PhotoMotionSource, RenderedSequence
from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.synthetic import default_workers, generate_sequence
from m5l_core.datasets.synthetic_writer import SequenceWriter, frame_names, ground_truth_files

MANIFEST = "mix.json"
SOURCE_FILE = "source.json"
FORMAT_VERSION = 1
_RENDERED_SOURCES = {"photo_motion": PhotoMotionSource, "paste": PasteSource,
                     "aligned_pairs": AlignedPairsSource}


def planned_names(config: MixConfig) -> list[tuple[str, int, str]]:
    """``(source, index, sequence name)`` of every sequence the config asks for."""
    return [(source, index, f"{source}_{index:04d}") for source in SOURCE_NAMES
            for index in range(getattr(config, source).sequences)]


def sequence_rng(seed: int, source: str, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, zlib.crc32(source.encode()), index))


def manifest(config: MixConfig) -> dict:
    """What decides the files: everything but the counts (which only add or drop sequences)."""
    sources = {}
    for source in SOURCE_NAMES:
        settings = to_dict(getattr(config, source))
        settings.pop("sequences")
        sources[source] = settings
    return {"generator": __name__, "format_version": FORMAT_VERSION, "seed": config.seed,
            "jpeg_quality": config.jpeg_quality, "sources": sources}


def _first_difference(found, expected, where: str = "mix") -> str | None:
    if isinstance(found, dict) and isinstance(expected, dict):
        for key in sorted(set(found) | set(expected)):
            difference = _first_difference(found.get(key), expected.get(key), f"{where}.{key}")
            if difference:
                return difference
        return None
    return None if found == expected else f"{where}: {found!r}, now {expected!r}"


def _filled(found, defaults):
    """``found`` with the keys it lacks taken from ``defaults``, at every depth."""
    if not (isinstance(found, dict) and isinstance(defaults, dict)):
        return found
    return {**defaults, **{key: _filled(value, defaults.get(key)) for key, value in found.items()}}


def check_folder(out: Path, config: MixConfig) -> None:
    """Write the manifest into a new folder, or check the one there; refuse foreign folders."""
    expected = manifest(config)
    path = out / MANIFEST
    if not path.is_file():
        if out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
            raise DatasetError(f"{out} is not empty and has no {MANIFEST}: not a mix folder; "
                               "choose another output folder")
        atomic_write_text(path, json.dumps(expected, indent=2, sort_keys=True) + "\n")
        return
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable ({err})") from None
    # A setting added after the folder was made is absent from its manifest; its default leaves the
    # files as they were (a rule for every new setting), so the default is what the folder holds.
    difference = _first_difference(_filled(found, manifest(MixConfig())), expected)
    if difference:
        raise DatasetError(f"{path}: this folder was made with other settings ({difference}); "
                           "use a new output folder or delete it")


def integer_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float ``x, y, w, h`` to whole pixels inside the frame (corners rounded, so no drift in w, h)."""
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    corners = np.nan_to_num(corners, nan=0.0)
    corners = np.clip(np.round(corners), 0, [size[0], size[1], size[0], size[1]]).astype(int)
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


def write_rendered(out: Path, name: str, made: RenderedSequence, info: dict, jpeg_quality: int,
                   workers: int) -> Path:
    """One sequence in the RGBT234 layout, written atomically (the synthetic writer's files)."""
    height, width = made.rgb[0].shape[:2]
    boxes = integer_boxes(made.boxes, (width, height))
    writer = SequenceWriter(out / name, jpeg_quality, png_compression=1, workers=workers)
    try:
        for t, (rgb, thermal) in enumerate(zip(made.rgb, made.thermal, strict=True)):
            writer.write_frame(frame_names("rgbt234", 8, t), rgb, thermal)
        texts = {**ground_truth_files("rgbt234", boxes, boxes),
                 SOURCE_FILE: json.dumps({**info, **made.info}, indent=2, sort_keys=True) + "\n"}
        return writer.finish(texts)
    except BaseException:
        writer.abort()
        raise


def write_synthetic(out: Path, name: str, config: MixSyntheticConfig, rng: np.random.Generator,
                    workers: int) -> Path:
    """A synthetic sequence with ``challenges_per_sequence`` of the configured challenges."""
    generator = dataclasses.replace(config.generator, width=config.width, height=config.height,
                                    n_frames=config.frames)
    count = min(config.challenges_per_sequence, len(config.challenges))
    chosen = [str(c) for c in rng.choice(np.array(config.challenges, dtype=object), count, replace=False)]
    made = generate_sequence(generator, seed=int(rng.integers(2 ** 31)), challenges=chosen, out_dir=out,
                             name=name, layout="rgbt234", keep_frames=False, workers=workers)
    return made.path


def generate_mix(config: MixConfig, out: str | Path, progress: bool = True,
                 workers: int | None = None) -> list[Path]:
    """Write every sequence of the mix not yet in ``out``; returns all sequence folders, in order."""
    plan = planned_names(config)
    if not plan:
        raise ConfigError("the mix has no sequences: give at least one source (mix.photo_motion, mix.paste, "
                          "mix.aligned_pairs, mix.synthetic) a positive sequences count")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_folder(out, config)
    workers = workers or default_workers()
    todo = [entry for entry in plan if not (out / entry[2]).is_dir()]
    # Inputs are listed up front (a missing folder fails before anything is written), and only
    # for sources with work left (a finished folder resumes without its inputs).
    sources = {source: _RENDERED_SOURCES[source](getattr(config, source), config.seed)
               for source in dict.fromkeys(entry[0] for entry in todo) if source in _RENDERED_SOURCES}
    frames = sum(getattr(config, source).frames for source, _, _ in todo)
    with tqdm(total=frames, desc="m5l-mix", unit="frame", disable=not progress) as bar:
        if progress and len(todo) < len(plan):
            bar.write(f"resuming: {len(plan) - len(todo)} of {len(plan)} sequences already in {out}")
        for source, index, name in todo:
            bar.set_postfix_str(name)
            rng = sequence_rng(config.seed, source, index)
            settings = getattr(config, source)
            if source == "synthetic":
                write_synthetic(out, name, settings, rng, workers)
            else:
                made = sources[source].render(index, rng)
                write_rendered(out, name, made, {"source": source, "index": index, "seed": config.seed},
                               config.jpeg_quality, workers)
            bar.update(settings.frames)
    atomic_write_text(out / "list.txt", "".join(f"{name}\n" for _, _, name in plan))
    return [out / name for _, _, name in plan]
