"""A small per-process cache of drawn scenes, so the G resets of a training group draw their scene once.

A scene is a pure function of (family, difficulty, split, scene id), so the envs of one process share an
LRU cache of the last :func:`scene_cache_size` scenes they drew, with each scene's glance per view size.
Cached scenes are never handed out themselves: each reset gets its own :class:`~iapo_gym.scene.Scene`
whose image is the shared, read-only array (tools that edit it copy it first) and whose ``meta`` is a deep
copy, so nothing an episode does reaches the next. Off the public API; the size is the one setting.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from iapo_gym.scene import Scene
from iapo_gym.validation import check_int

from .render import glance as whole_glance
from .render import ink_map

DEFAULT_SIZE = 16
"""Scenes kept per process by default (a 1024x1024 canvas is 3 MiB: 48 MiB in all)."""
MAX_GLANCES = 4
"""View sizes whose glance a cached scene keeps (the rest are recomputed)."""


class CachedScene:
    """One drawn scene (its image made read-only) and its glances, keyed by view size."""

    def __init__(self, scene: Scene) -> None:
        scene.image.setflags(write=False)
        self.scene = scene
        self.ink = ink_map(scene.image)
        """Where the image may differ from white, when its canvas recorded it (else ``None``)."""
        self._glances: dict[int, np.ndarray] = {}

    def episode_scene(self) -> Scene:
        """A Scene for one episode: the same read-only image and immutable fields, its own ``meta``."""
        scene = copy.copy(self.scene)
        scene.meta = _copy_plain(self.scene.meta)
        return scene

    def glance(self, view_size: int) -> np.ndarray:
        """The whole canvas at ``view_size`` (read-only; the env returns copies)."""
        glance = self._glances.get(view_size)
        if glance is None:
            scene = self.scene
            glance = whole_glance(scene.image, view_size, self.ink)
            glance.setflags(write=False)
            if len(self._glances) < MAX_GLANCES:
                self._glances[view_size] = glance
        return glance


_ATOMS = (str, int, float, bool, type(None))


def _copy_plain(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists and tuples of strings, numbers, booleans and None), by
    hand: ``copy.deepcopy``'s generic machinery costs tens of microseconds a reset; anything else is left
    to it."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {k: _copy_plain(v) for k, v in value.items()}
    if kind is list:
        return [_copy_plain(v) for v in value]
    if kind is tuple:
        return tuple(_copy_plain(v) for v in value)
    return copy.deepcopy(value)


class SceneCache:
    """An LRU map from a scene key to its :class:`CachedScene`, holding at most ``size`` (0: off)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._entries: OrderedDict[Hashable, CachedScene] = OrderedDict()
        self.size = size

    @property
    def size(self) -> int:
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        self._size = check_int("scene cache size", size, 0, hint=" (0 turns caching off)")
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> CachedScene | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: CachedScene) -> None:
        if self._size == 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


_CACHE = SceneCache()


def scene_cache() -> SceneCache:
    """This process's scene cache (shared by every env in it)."""
    return _CACHE


def scene_cache_size() -> int:
    return _CACHE.size


def set_scene_cache_size(size: int) -> int:
    """Keep at most ``size`` scenes (0 turns caching off; the default is :data:`DEFAULT_SIZE`); returns the
    previous size. Observations are bit-identical either way: only the time of a reset changes."""
    previous = _CACHE.size
    _CACHE.size = size
    return previous


__all__ = ["DEFAULT_SIZE", "CachedScene", "SceneCache", "scene_cache", "scene_cache_size", "set_scene_cache_size"]
