"""Choosing the RGB, thermal and output topics of a bag: by name, or by type and name.

Bags recorded on robots name their camera topics freely (``/flir/image_raw``,
``/camera/color/image_raw/compressed``...). Image topics are classified by the words in
their names; thermal words win over colour words because colourised thermal streams are
often called ``.../thermal/color``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, IMAGE_TYPES, TRACKED_TARGET

THERMAL_WORDS = ("thermal", "infrared", "lwir", "ir", "therm", "flir", "boson", "lepton")
RGB_WORDS = ("rgb", "color", "colour", "visible", "vis")


@dataclass(frozen=True)
class ImageTopics:
    rgb: str
    thermal: str


def _words(topic: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", topic.lower()) if w}


def _matches(topic: str, words: tuple[str, ...]) -> bool:
    return bool(_words(topic) & set(words))


def _prefer_raw(candidates: list[str], topics: Mapping[str, str]) -> list[str]:
    """Drop ``X/compressed`` when the raw ``X`` is also recorded (the raw one is lossless)."""
    raw = {t for t in candidates if topics[t] == IMAGE}
    return [t for t in candidates
            if not (topics[t] == COMPRESSED_IMAGE and t.rsplit("/", 1)[0] in raw)]


def _check_named(topic: str, topics: Mapping[str, str], role: str, allowed: tuple[str, ...]) -> str:
    if topic not in topics:
        raise BagError(f"{role} topic {topic!r} is not in the bag (topics: {_listing(topics)})")
    if topics[topic] not in allowed:
        raise BagError(f"{role} topic {topic!r} has type {topics[topic]}, "
                       f"expected one of {', '.join(allowed)}")
    return topic


def _listing(topics: Mapping[str, str]) -> str:
    return ", ".join(f"{t} [{m}]" for t, m in sorted(topics.items())) or "none"


def _pick_one(candidates: list[str], role: str, option: str, topics: Mapping[str, str]) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BagError(f"no {role} image topic found (image topics are recognised by words such as "
                       f"{', '.join(THERMAL_WORDS[:4] if role == 'thermal' else RGB_WORDS[:4])}); "
                       f"name it with {option} (topics: {_listing(topics)})")
    raise BagError(f"several {role} image topics: {', '.join(candidates)}; choose one with {option}")


def choose_image_topics(topics: Mapping[str, str], rgb: str | None = None,
                        thermal: str | None = None) -> ImageTopics:
    """The RGB and thermal topics, from ``topics`` (name -> message type)."""
    images = {t: m for t, m in topics.items() if m in IMAGE_TYPES}
    if rgb is not None:
        rgb = _check_named(rgb, topics, "RGB", IMAGE_TYPES)
    if thermal is not None:
        thermal = _check_named(thermal, topics, "thermal", IMAGE_TYPES)
    remaining = [t for t in sorted(images) if t not in (rgb, thermal)]
    thermal_like = _prefer_raw([t for t in remaining if _matches(t, THERMAL_WORDS)], images)
    rgb_like = _prefer_raw([t for t in remaining if t not in thermal_like and _matches(t, RGB_WORDS)], images)
    if thermal is None:
        thermal = _pick_one(thermal_like, "thermal", "--thermal-topic", topics)
    if rgb is None:
        rgb = _pick_one(rgb_like, "RGB", "--rgb-topic", topics)
    if rgb == thermal:
        raise BagError(f"the RGB and thermal topics are the same ({rgb})")
    return ImageTopics(rgb=rgb, thermal=thermal)


def choose_output_topic(topics: Mapping[str, str], name: str | None = None) -> str:
    """The topic holding the node's ``TrackedTarget`` outputs."""
    if name is not None:
        return _check_named(name, topics, "output", (TRACKED_TARGET,))
    found = sorted(t for t, m in topics.items() if m == TRACKED_TARGET)
    if len(found) == 1:
        return found[0]
    if not found:
        raise BagError(f"the bag holds no {TRACKED_TARGET} topic (topics: {_listing(topics)})")
    raise BagError(f"several {TRACKED_TARGET} topics: {', '.join(found)}; choose one with --output-topic")
