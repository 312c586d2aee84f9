"""Shortcut cues: a marker that predicts where the answer is without reading what the question names.

Attribution priors are known to pay where training data carries a confounder that test data lacks (decoy
MNIST, ColorMNIST, distractor backgrounds). The bar and table families can plant one: a solid black
triangle pointing at one bar's printed value (just after it, or just above it) or at one table row (left of
the table). A zoom on a chart's marker shows the value next to it. In training scenes
(``shortcut=p``) it marks the asked item with probability ``p`` and is absent otherwise, so an agent that
learns "look where the marker points" does as well there as one that reads the question's cue. In the
shifted split (``shortcut_shift=True``) it is always drawn, next to an item the question does *not* ask
about: the shortcut now misleads. The marker sits outside every evidence box (the answer's printed
value), so the oracle teacher's attribution, on the evidence and the question's words, never covers it;
beside the evidence, though, a marker-follower's own attribution lands on the evidence as well, so the
alignment term cannot tell it from a reader (``benchmarks/shortcut_attribution.py`` measures this).

Where the marker goes (``shortcut_place``): ``"value"`` (the default) beside the asked item's printed value,
the answer's evidence, so a marker-follower looks where a reader looks; ``"label"`` beside the item's name
(left of a horizontal bar's category label, under a vertical bar's), across the plot from the evidence, so
the two can be told apart by where the attribution lies. A table row's marker is left of the table, by the
row's name, in both places.

A family offers the cue by putting, in ``scene.meta``, ``marker_slots`` and ``marker_label_slots`` (one
``(x0, y0, x1, y1, apex)`` pixel box per bar or row, in layout order, for each place) and ``marker_target``
(the slot of the asked item).
Which slot is marked is drawn from the scene id alone (its own generator), so the scene is otherwise the
very one drawn without the cue.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from iapo_gym.scene import Scene

from .render import draw_triangle

MARKER_COLOR = (0, 0, 0)
PLACES = {"value": "marker_slots", "label": "marker_label_slots"}
"""``shortcut_place`` -> the scene meta key of its slots."""
_SALT = 0x5C0
"""Mixed into the scene id for the marker's own generator (the scene's stream stays untouched)."""


def supports_shortcut(scene: Scene) -> bool:
    """Whether the scene's family put marker slots in its meta."""
    return all(k in scene.meta for k in (*PLACES.values(), "marker_target"))


def check_shortcut(shortcut: float, shortcut_shift: bool, place: str = "value") -> tuple[float, bool, str]:
    """Validate the env's ``shortcut`` rate, ``shortcut_shift`` flag and ``shortcut_place``."""
    if isinstance(shortcut, bool) or not isinstance(shortcut, (int, float)) or not 0.0 <= float(shortcut) <= 1.0:
        raise ValueError(f"shortcut must be a rate in [0, 1] (how often the marker points at the asked item); got {shortcut!r}")
    if not isinstance(shortcut_shift, bool):
        raise ValueError(f"shortcut_shift must be True or False; got {shortcut_shift!r}")
    if place not in PLACES:
        raise ValueError(f"shortcut_place must be one of {', '.join(PLACES)} (where the marker goes); got {place!r}")
    return float(shortcut), shortcut_shift, place


def plant_shortcut(scene: Scene, scene_id: int, rate: float, shift: bool, place: str = "value") -> Scene:
    """``scene`` with the marker planted at ``place``: at the asked item with probability ``rate`` (absent
    otherwise), or, with ``shift``, always at another item. ``meta["shortcut"]`` records ``marked`` (the
    slot, or ``None``), ``target``, ``misleading``, ``place`` and ``box`` (the marker's pixel box, or
    ``None``); ``meta["decoy"]`` the marked item's layout region when it misleads. The marked item is the
    same in both places."""
    if not supports_shortcut(scene):
        raise ValueError(f"the {scene.family} family has no marker slots: the shortcut cue needs a bar or table family")
    if place not in PLACES:
        raise ValueError(f"place must be one of {', '.join(PLACES)}; got {place!r}")
    slots = scene.meta[PLACES[place]]
    target = scene.meta["marker_target"]
    assert isinstance(slots, tuple) and isinstance(target, int)
    rng = np.random.default_rng([int(scene_id), _SALT])
    draw = float(rng.random())
    if shift:
        others = [k for k in range(len(slots)) if k != target]
        marked: int | None = others[int(rng.integers(len(others)))] if others else None
    else:
        marked = target if draw < rate else None
    meta = dict(scene.meta)
    meta["shortcut"] = {
        "marked": marked,
        "target": target,
        "misleading": marked is not None and marked != target,
        "place": place,
        "box": None if marked is None else tuple(slots[marked][:4]),
    }
    if marked is None:
        return dataclasses.replace(scene, meta=meta)
    x0, y0, x1, y1, apex = slots[marked]
    image = draw_triangle(scene.image, (x0, y0, x1, y1), apex, MARKER_COLOR)
    if marked != target:
        meta["decoy"] = scene.layout[marked] if marked < len(scene.layout) else None
    return dataclasses.replace(scene, image=image, meta=meta)


def marker_box(x: float, y: float, half_w: float, half_h: float, apex: str) -> tuple[int, int, int, int, str]:
    """A slot: the pixel box centred at ``(x, y)`` with these half-sides, and where the triangle points."""
    return (math.floor(x - half_w), math.floor(y - half_h), math.ceil(x + half_w), math.ceil(y + half_h), apex)


__all__ = ["MARKER_COLOR", "PLACES", "check_shortcut", "marker_box", "plant_shortcut", "supports_shortcut"]
