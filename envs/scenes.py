"""Families from the "thinking with images" line of work (DeepEyes, V*, HR-Bench): the colour of a tiny
tagged object among distractors on a cluttered canvas, and a small printed word in a street scene."""

from __future__ import annotations

import cv2
import numpy as np

from iapo_gym.scene import Box, Program, Region, Scene, pad_box
from iapo_gym.vocab import COLORS, TAGS, WORDS

from .base import ToolVQAEnv
from .render import FONT, SMALL, Canvas
from .style import FIXED, Style

_COLOR_NAMES = list(COLORS)
_TEXT_MARGIN = 0.006

# -- FineDetail ----------------------------------------------------------------------------------------

OBJECT_COUNTS = {0: 16, 1: 28, 2: 44}
OBJECT_SIZES = {0: (8, 10), 1: (7, 9), 2: (6, 8)}
"""Side (px, inclusive range) of the objects: ~1 px in the 128 px glance of the 1024 px canvas."""
CLUTTER_COUNTS = {0: 20, 1: 45, 2: 80}
NEIGHBOURS = {0: 2, 1: 3, 2: 4}
"""Distractors placed right around the target, each in a colour other than the target's."""
TAG_SCALE = 0.36  # ~9 px glyphs: legible in a zoom of <= ~1/8 of the canvas
_OBJECT_PAD = 2  # px of evidence padding around an object: its zoom shows nothing saturated but the object
_OUTLINE = (45, 45, 45)
_TAG_GAP = 8  # px from an object's right edge to its tag: the tag stays out of the padded evidence box
FRAME_SIDES = (52, 60)
"""Outer side (px, inclusive range) of the black frame around the target at difficulty 0: 7 glance pixels."""
FRAME_THICKNESS = 12
"""px: wherever the 8 px glance cells fall, each side of the frame fills >= 3/4 of a row (column) of them:
those glance pixels are darker than 80, and the textured background never is."""
FRAME_COLOR = COLORS["black"]
_FRAME_CLEAR = 6  # px from the target to the frame's inner edge: its padded evidence box (and zoom) has no frame
_FRAME_MARGIN = 6  # px around the frame that no other object or tag claims: nothing else is in it or touches it


def textured_background(rng: np.random.Generator, clutter: int, size: int = 1024) -> np.ndarray:
    """A mottled grey canvas: smooth blotches, 4 px grain, faint colour mottling and outline clutter, all of
    low saturation (< 40, the threshold of :func:`~iapo_gym.agents.oracle.read_color`) and never darker
    than ~100, so a zoom on a coloured (or black) object still shows it as the most saturated (or the only
    dark) thing."""
    # composed at a quarter of the size and upscaled once: this runs on every reset, and full-size numpy
    # arithmetic (or cv2 with a per-channel scalar) costs 5-15 ms here
    q = size // 4
    blot = cv2.resize(rng.integers(110, 216, size=(20, 20), dtype=np.uint8), (q, q), interpolation=cv2.INTER_CUBIC)
    grain = rng.integers(0, 24, size=(q, q), dtype=np.uint8)
    mottle = cv2.resize(rng.integers(0, 25, size=(q // 3, q // 3, 3), dtype=np.uint8), (q, q), interpolation=cv2.INTER_LINEAR)
    small = cv2.add(cv2.cvtColor(cv2.add(blot, grain), cv2.COLOR_GRAY2RGB), mottle)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
    # one draw for every clutter shape: kind, position, extent, grey level, tint, thickness
    params = rng.integers(0, 1 << 16, size=(clutter, 9))
    for kind, x, y, x2, y2, g, dr, dg, thick in params.tolist():
        x, y, x2, y2 = x % size, y % size, x2 % size, y2 % size
        g = 110 + g % 105
        col = (g + dr % 25 - 12, g + dg % 25 - 12, g)  # saturation <= 24
        thick = 1 + thick % 2
        kind %= 4
        if kind == 0:
            cv2.line(image, (x, y), (x2, y2), col, thick, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(image, (x, y), 10 + x2 % 70, col, thick, cv2.LINE_AA)
        elif kind == 2:
            cv2.rectangle(image, (x, y), (x + 15 + x2 % 105, y + 15 + y2 % 105), col, thick)
        else:  # a filled pale patch
            cv2.rectangle(image, (x, y), (x + 20 + x2 % 130, y + 20 + y2 % 130), col, -1)
    return image


def _first_free(
    cands: list[list[int]], side: int, tw: int, th: int, pad: int, margin: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int, tuple[int, int, int, int]] | None:
    """The first candidate top-left corner whose claim (its box padded by ``pad``, and its tag, grown by
    ``margin``) lies inside the canvas and clear of every ``taken`` claim; ``None`` if none is.

    Plain Python over a batch of candidates drawn at once: on a mostly empty canvas the first one usually
    fits, and small numpy arrays would cost more than they save."""
    for x, y in cands:
        cy = y + side / 2
        x0, y0 = x - pad - margin, int(min(y - pad, cy - th / 2 - 1)) - margin
        x1, y1 = x + side + _TAG_GAP + tw + margin, int(max(y + side + pad, cy + th / 2 + 2)) + margin
        if (
            x0 >= 4
            and y0 >= 4
            and x1 <= 1020
            and y1 <= 1020
            and not any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in taken)
        ):
            return x, y, (x0, y0, x1, y1)
    return None


class FineDetailEnv(ToolVQAEnv):
    """The colour of one tiny object among many (tagged, or framed at difficulty 0), as in V* and HR-Bench.

    ## Description
    16/28/44 tiny squares and circles (8-10/7-9/6-8 px at difficulty 0/1/2), each in one of the named
    colours with a small tag (``K7``) printed beside it, scattered over a 1024x1024 canvas of low-saturation
    texture and outline clutter. In the 128 px glance an object is about one pixel, its colour blended away
    (a dark rim leaves a colour core of 4-5 px), and the tags are illegible: the agent looks closely
    (``zoom``) before answering with a colour name.

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its colour still needs the
      tools): the asked object, untagged, sits alone inside a thick black square frame (52-60 px outside,
      12 px thick: a dark ring of 7 glance pixels, far larger than any object) and the question is "What
      color is the small object inside the black frame?". No other object or tag is in or touches the frame,
      and the object is at least 6 px inside it, so a zoom on the object shows no frame.
    - Difficulties 1 and 2: the question names the tag: "What color is the small object tagged K7?"; a few
      distractors in other colours sit right around the asked object, so the glance blends them; the agent
      finds the tag (``ocr``) and zooms on the object.

    At difficulty 0 ``scene.meta`` holds ``cue`` (``"frame"``) and ``frame_box`` (the frame's outer box,
    normalised); the target's layout region keeps its (unprinted) tag as its label.
    """

    family = "FineDetail"

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        c = Canvas(1, 1)  # the background replaces the image: skip allocating a blank one
        c.image = textured_background(rng, CLUTTER_COUNTS[difficulty])
        n = OBJECT_COUNTS[difficulty]
        lo, hi = OBJECT_SIZES[difficulty]
        tags = [str(t) for t in rng.choice(TAGS, size=n, replace=False)]
        target_color = int(rng.integers(len(_COLOR_NAMES)))
        taken: list[tuple[int, int, int, int]] = []
        placed: list[tuple[int, int, int, int, int, str]] = []  # x, y (top-left), side, colour index, shape, tag
        easy = difficulty == 0
        frame = (0, 0, 0, 0)  # the frame's outer box in px (difficulty 0)
        if easy:  # the frame, then the target inside it, at least _FRAME_CLEAR px from its inner edge
            fs = int(rng.integers(FRAME_SIDES[0], FRAME_SIDES[1] + 1))
            fx, fy = (int(v) for v in rng.integers(20, 1024 - 20 - fs + 1, size=2))
            frame = (fx, fy, fx + fs, fy + fs)
            t_side = int(rng.integers(lo, hi + 1))
            inner = FRAME_THICKNESS + _FRAME_CLEAR
            ox, oy = (int(v) for v in rng.integers(inner, fs - inner - t_side + 1, size=2))
            tx, ty = fx + ox, fy + oy
            taken.append((fx - _FRAME_MARGIN, fy - _FRAME_MARGIN, fx + fs + _FRAME_MARGIN, fy + fs + _FRAME_MARGIN))
            placed.append((tx, ty, t_side, target_color, int(rng.integers(2)), tags[0]))
        else:
            tx, ty = (int(v) for v in rng.integers(60, 1024 - 100, size=2))
            t_side = 0
        for k, tag in enumerate(tags):
            if easy and k == 0:
                continue  # placed in its frame above
            side = int(rng.integers(lo, hi + 1))
            (tw, th), _ = cv2.getTextSize(tag, FONT, TAG_SCALE, 1)
            near = not easy and 0 < k <= NEIGHBOURS[difficulty]  # at difficulty 0 the frame keeps them out
            if k == 0:
                color, t_side = target_color, side
            elif near:
                color = int(rng.choice([i for i in range(len(_COLOR_NAMES)) if i != target_color]))
            else:
                color = int(rng.integers(len(_COLOR_NAMES)))
            # what an object claims: its box (padded, except a neighbour: it may come right up to the target's
            # padded box, so that in the glance the two blend) and its tag, plus a margin
            pad, margin = (0, 1) if near else (_OBJECT_PAD, 2)
            if k == 0:
                cands = [[tx, ty]]
            elif near:  # 5..10 px from the target (>= 3 px outside its padded box): one blob in the glance
                lo_xy, hi_xy = [tx - 10 - side, ty - 10 - side], [tx + t_side + 11, ty + t_side + 11]
                cands = rng.integers(lo_xy, hi_xy, size=(64, 2)).tolist()
            else:
                cands = rng.integers(20, 1024 - 60, size=(32, 2)).tolist()
            found = _first_free(cands, side, tw, th, pad, margin, taken)
            if found is None:
                continue  # no room left near the target or on the canvas: fewer distractors
            x, y, rect = found
            taken.append(rect)
            placed.append((x, y, side, color, int(rng.integers(2)), tag))
        if easy:  # a filled black square, then the texture inside put back: a 12 px ring
            fx, fy, fx1, fy1 = frame
            t = FRAME_THICKNESS
            inside = c.image[fy + t : fy1 - t, fx + t : fx1 - t].copy()
            cv2.rectangle(c.image, (fx, fy), (fx1 - 1, fy1 - 1), FRAME_COLOR, -1)
            c.image[fy + t : fy1 - t, fx + t : fx1 - t] = inside
        layout: list[Region] = []
        for x, y, side, color, shape, tag in placed:
            rgb = COLORS[_COLOR_NAMES[color]]
            # a dark rim, as on printed markers, leaves a colour core of 4-5 px whatever the size: too small to
            # survive the 8x downsampling of the glance, plain in a zoom
            rim = max(1, (side - 4) // 2)
            if shape == 0:
                cv2.rectangle(c.image, (x, y), (x + side - 1, y + side - 1), _OUTLINE, -1)
                cv2.rectangle(c.image, (x + rim, y + rim), (x + side - 1 - rim, y + side - 1 - rim), rgb, -1)
            else:
                centre = (x + side // 2, y + side // 2)
                cv2.circle(c.image, centre, side // 2, _OUTLINE, -1, cv2.LINE_AA)
                cv2.circle(c.image, centre, side // 2 - rim, rgb, -1, cv2.LINE_AA)
            if not (easy and tag == tags[0]):  # the framed target is untagged: nothing else is in its frame
                c.text(tag, x + side + _TAG_GAP, y + side / 2, TAG_SCALE, (40, 40, 40))
            box = (x / c.width, y / c.height, (x + side) / c.width, (y + side) / c.height)  # inside: no clipping
            layout.append(Region("object", box, tag, _COLOR_NAMES[color]))
        target = layout[0]
        evidence = Region("object", pad_box(target.box, _OBJECT_PAD / c.width), target.label, target.value)
        keys: tuple[str, ...]
        if easy:
            q, keys = "What color is the small object inside the black frame?", ("black", "frame", "color")
            meta: dict[str, object] = {"cue": "frame", "frame_box": tuple(v / 1024 for v in frame)}
        else:
            q, keys, meta = f"What color is the small object tagged {target.label}?", (target.label, "color"), {}
        return Scene(
            "FineDetail",
            c.image,
            q,
            (target.value,),
            (evidence,),
            Program("color"),
            tuple(layout),
            tuple(c.texts),
            keys,
            meta=meta,
        )


# -- TextRead ------------------------------------------------------------------------------------------

BUILDING_COUNTS = {0: 3, 1: 5, 2: 7}
SIGN_SCALES = {0: SMALL, 1: 0.38, 2: 0.35}
"""Sign type sizes (~11/10/9 px glyphs): illegible in the glance, legible in a close zoom."""
_GROUND = 860  # y of the street line
_SKY = (205, 228, 245)
_WINDOW = (226, 234, 240)


def _describe(rng: np.random.Generator, color_names: list[str], heights: list[int]) -> tuple[int, str, tuple[str, ...]]:
    """Pick a building and a phrase that singles it out at a glance: its colour, its side, or its height."""
    n = len(color_names)
    kind = int(rng.integers(4))
    if kind <= 1:
        i = int(rng.integers(n))
        return i, f"the {color_names[i]} building", (color_names[i],)
    if kind == 2:
        if rng.integers(2):
            return 0, "the leftmost building", ("leftmost",)
        return n - 1, "the rightmost building", ("rightmost",)
    if rng.integers(2):
        return int(np.argmax(heights)), "the tallest building", ("tallest",)
    return int(np.argmin(heights)), "the shortest building", ("shortest",)


class TextReadEnv(ToolVQAEnv):
    """A small printed word in a large street scene, as in HR-Bench and DeepEyes' fine-grained reading.

    ## Description
    3/5/7 large buildings (difficulty 0/1/2) in distinct colours stand on a street across a 1024x1024 canvas,
    with windows, doors and (from difficulty 1) house numbers, lamps and cars as clutter. Each building
    carries one white sign with a word in small type (smaller at higher difficulty). The question singles a
    building out by what a glance shows (its colour, leftmost/rightmost, tallest/shortest): "What word is
    on the sign of the red building?". The word is illegible in the glance: the agent reads it with ``ocr``
    on the sign.
    """

    family = "TextRead"

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        n = BUILDING_COUNTS[difficulty]
        scale = SIGN_SCALES[difficulty]
        c = Canvas()
        cv2.rectangle(c.image, (0, 0), (c.width, _GROUND), _SKY, -1)  # cv2, not numpy broadcasting: 50x faster
        cv2.rectangle(c.image, (0, _GROUND), (c.width, c.height), (120, 120, 125), -1)
        c.rect(0, _GROUND, 1024, _GROUND + 14, (185, 185, 185))  # kerb
        for mark in range(20, 1024, 90):  # lane marks
            c.rect(mark, 950, mark + 45, 956, (240, 240, 240))
        color_names = [str(v) for v in rng.choice(_COLOR_NAMES, size=n, replace=False)]
        words = [str(v) for v in rng.choice(WORDS, size=n, replace=False)]
        # heights at least 30 px apart, so "tallest"/"shortest" is plain at a glance
        steps = rng.choice(np.arange(300, 760, 40), size=n, replace=False)
        heights = [int(h) + int(rng.integers(-5, 6)) for h in steps]
        gap = 12
        min_w = 100  # room for the widest sign word, and for the door with its house number
        widths = min_w + rng.dirichlet(np.full(n, 4.0)) * (1024 - 2 * gap - gap * (n - 1) - n * min_w)
        layout: list[Region] = []
        signs: list[Region] = []
        x = float(gap)
        edges: list[float] = []  # centres of the gaps between buildings
        for i in range(n):
            w = float(widths[i])
            x0, x1, top = int(x), int(x + w), _GROUND - heights[i]
            x += w + gap
            edges.append(x - gap / 2)
            rgb = COLORS[color_names[i]]
            building = c.rect(x0, top, x1, _GROUND, rgb)
            cv2.rectangle(c.image, (x0, top), (x1, _GROUND), (60, 60, 60), 1)
            # windows on a grid, a door at the bottom
            cols = max(1, int((x1 - x0 - 16) // 34))
            step = (x1 - x0 - 24) / cols
            for row_y in range(top + 20, _GROUND - 70, 44):
                for col in range(cols):  # cv2 directly: windows are many and need no recorded box
                    wx = x0 + 12 + col * step
                    cv2.rectangle(c.image, (int(wx + 4), row_y), (int(wx + step - 4), row_y + 24), _WINDOW, -1)
            cx = (x0 + x1) / 2
            c.rect(cx - 14, _GROUND - 46, cx + 14, _GROUND, (70, 55, 45))
            # the sign: a white plate in the upper part of the facade, clear of the house number by the door
            word = words[i]
            (tw, th), _ = cv2.getTextSize(word, FONT, scale, 1)
            sx = float(rng.uniform(x0 + 8 + tw / 2 + 6, max(x0 + 9 + tw / 2 + 6, x1 - 8 - tw / 2 - 6)))
            sy = float(rng.uniform(top + 30, top + 30 + 0.5 * (heights[i] - 140)))
            plate = (int(sx - tw / 2 - 7), int(sy - th / 2 - 7)), (int(sx + tw / 2 + 7), int(sy + th / 2 + 8))
            cv2.rectangle(c.image, *plate, (250, 250, 250), -1)
            cv2.rectangle(c.image, *plate, (40, 40, 40), 1)
            item = c.text(word, sx, sy, scale, (20, 20, 20), align="center")
            sign: Box = pad_box(item.box, _TEXT_MARGIN)
            signs.append(Region("sign", sign, color_names[i], word))
            layout.append(Region("building", building, color_names[i], word))
            if difficulty >= 1:  # house number beside the door: more small text to skip over
                c.rect(cx + 18, _GROUND - 40, cx + 46, _GROUND - 26, (250, 250, 250))
                c.text(str(int(rng.integers(1, 99))), cx + 32, _GROUND - 33, 0.33, (20, 20, 20), align="center")
        if difficulty >= 1:  # lamps in the gaps between buildings (never over text), cars in their own lanes
            gaps = rng.choice(n - 1, size=min(n - 1, 2 * difficulty + 1), replace=False)
            for g in gaps.tolist():
                lx = int(edges[g])
                c.rect(lx - 2, _GROUND - 120, lx + 2, _GROUND + 10, (50, 50, 50))
                c.rect(lx - 8, _GROUND - 128, lx + 8, _GROUND - 118, (250, 240, 170))
            for slot in rng.choice(9, size=difficulty + 1, replace=False).tolist():
                vx = 10 + 112 * slot + int(rng.integers(0, 20))
                car = COLORS[str(rng.choice(_COLOR_NAMES))]
                c.rect(vx, 900, vx + 80, 935, car)
                cv2.circle(c.image, (vx + 18, 937), 9, (30, 30, 30), -1)
                cv2.circle(c.image, (vx + 62, 937), 9, (30, 30, 30), -1)
        i, phrase, keys = _describe(rng, color_names, heights)
        q = f"What word is on the sign of {phrase}?"
        layout.extend(signs)
        return Scene(
            "TextRead",
            c.image,
            q,
            (words[i],),
            (signs[i],),
            Program("read"),
            tuple(layout),
            tuple(c.texts),
            keys + ("sign", "word"),
        )


__all__ = ["FineDetailEnv", "TextReadEnv", "textured_background"]
