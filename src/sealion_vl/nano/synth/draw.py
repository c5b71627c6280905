"""Pillow drawings of the synthetic world: shape scenes and tropical fruits (flags: ``flags``).

Everything is drawn at ``SS`` times the final size and box-downsampled to ``SIZE`` x ``SIZE``
(cheap anti-aliasing). Coordinates in this module are in final-image pixels unless a name
says ``hi``. No text is ever drawn, so no fonts are needed and no script can render wrongly.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from sealion_vl.nano.synth.world import COLOUR_RGB, COLOURS, COUNTS, FRUITS, SHAPES

SIZE = 64  # final image side
SS = 4  # supersampling factor
HI = SIZE * SS

Point = tuple[float, float]


def as_rng(rng: random.Random | int | None) -> random.Random:
    """A ``random.Random`` from an rng, a seed, or ``None`` (seed 0)."""
    return rng if isinstance(rng, random.Random) else random.Random(0 if rng is None else rng)


def background(rng: random.Random) -> tuple[int, int, int]:
    """A light, low-saturation background (never pure white: flags have white parts)."""
    g = rng.randint(212, 238)
    return tuple(min(245, max(0, g + rng.randint(-8, 8))) for _ in range(3))  # type: ignore[return-value]


def jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def finish(img: Image.Image) -> Image.Image:
    """The hi-res drawing box-downsampled to ``SIZE`` (RGB)."""
    return img.reduce(SS) if img.size == (HI, HI) else img.resize((SIZE, SIZE), Image.BOX)


def star(cx: float, cy: float, outer: float, inner: float, n: int = 5, rot: float = -90):
    """Points of an ``n``-pointed star (first point at angle ``rot`` degrees)."""
    pts = []
    for i in range(2 * n):
        a = math.radians(rot + i * 180 / n)
        r = outer if i % 2 == 0 else inner
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def place(rng: random.Random, radii: list[float], gap: float = 2.5) -> list[Point]:
    """Centres for non-overlapping discs of the given radii inside the canvas.

    Rejection sampling; when a layout does not fit after a few hundred tries the radii
    shrink by 10% and the layout restarts (so it always ends, deterministically).
    """
    for _ in range(50):
        centres: list[Point] = []
        for r in radii:
            for _ in range(200):
                c = (rng.uniform(r + 1, SIZE - r - 1), rng.uniform(r + 1, SIZE - r - 1))
                if all(
                    math.dist(c, o) >= r + ro + gap for o, ro in zip(centres, radii, strict=False)
                ):
                    centres.append(c)
                    break
            else:
                break
        if len(centres) == len(radii):
            return centres
        radii[:] = [r * 0.9 for r in radii]
    raise RuntimeError("could not place the objects")  # unreachable for the sizes used here


# --------------------------------------------------------------------------- scenes

# Half-size range (final pixels) of the objects of a scene; four squares still fit.
SCENE_HALF_SIZE = (7.5, 9.0)
FRUIT_HALF_SIZE = (8.5, 10.5)
# Bounding-disc radius of each shape per unit of its half-size.
_BOUND = {"circle": 1.0, "square": math.sqrt(2), "triangle": 1.0}


def _shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, s: float, fill) -> None:
    x, y, s = cx * SS, cy * SS, s * SS
    if shape == "circle":
        d.ellipse((x - s, y - s, x + s, y + s), fill=fill)
    elif shape == "square":
        d.rectangle((x - s, y - s, x + s, y + s), fill=fill)
    else:  # equilateral, pointing up, inscribed in the bounding circle
        pts = [
            (x + s * math.cos(a), y + s * math.sin(a))
            for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
        d.polygon(pts, fill=fill)


def render_scene(
    rng: random.Random | int | None = None,
    *,
    shape: str | None = None,
    colour: str | None = None,
    count: int | None = None,
) -> tuple[Image.Image, dict]:
    """1-4 non-overlapping, equal-sized shapes of one kind and one colour on a light background.

    Args:
        rng: Source of randomness (a ``random.Random`` or a seed).
        shape, colour, count: Fix these facts (default: drawn from ``rng``).

    Returns:
        ``(image, facts)``: a 64x64 RGB image and ``{"kind": "scene", "shape", "colour",
        "count"}``.
    """
    rng = as_rng(rng)
    shape = shape or rng.choice(SHAPES)
    colour = colour or rng.choice(COLOURS)
    count = count or rng.choice(COUNTS)
    if shape not in SHAPES or colour not in COLOURS or count not in COUNTS:
        raise ValueError(f"unknown scene facts: {shape=}, {colour=}, {count=}")
    img = Image.new("RGB", (HI, HI), background(rng))
    d = ImageDraw.Draw(img)
    # One size for every object of a scene, the same range whatever the count: "four squares"
    # then cover about twice the area of "two squares", a cue a tiny vision tower can use.
    sizes = [rng.uniform(*SCENE_HALF_SIZE)] * count
    bounds = [s * _BOUND[shape] for s in sizes]
    centres = place(rng, bounds)
    sizes = [b / _BOUND[shape] for b in bounds]  # place() may have shrunk them
    fill = jitter(COLOUR_RGB[colour], rng, 10)
    for (cx, cy), s in zip(centres, sizes, strict=True):
        _shape(d, shape, cx, cy, s, fill)
    return finish(img), {"kind": "scene", "shape": shape, "colour": colour, "count": count}


# --------------------------------------------------------------------------- fruits
# Each drawer takes the hi-res draw, centre and radius (hi-res pixels) and the rng.


def _durian(d, x, y, r, rng) -> None:
    body = jitter((126, 138, 38), rng, 10)
    pts = star(x, y, r * 1.12, r * 0.96, n=16, rot=rng.uniform(0, 22))
    d.polygon([(px, y + (py - y) * 1.08) for px, py in pts], fill=body, outline=(84, 92, 20))
    d.rectangle((x - r * 0.07, y - r * 1.32, x + r * 0.07, y - r * 1.0), fill=(96, 70, 30))


def _mangosteen(d, x, y, r, rng) -> None:
    d.ellipse((x - r, y - r * 0.92, x + r, y + r), fill=jitter((78, 18, 58), rng, 8))
    d.ellipse((x - r * 0.55, y - r * 0.5, x - r * 0.2, y - r * 0.1), fill=(112, 44, 92))
    leaf = jitter((70, 130, 45), rng, 10)
    for k in range(5):
        a = math.radians(-90 + (k - 2) * 34)
        lx, ly = x + r * 0.42 * math.cos(a), y - r * 0.62 + r * 0.25 * math.sin(a)
        d.ellipse((lx - r * 0.22, ly - r * 0.14, lx + r * 0.22, ly + r * 0.14), fill=leaf)
    d.rectangle((x - r * 0.06, y - r * 1.08, x + r * 0.06, y - r * 0.72), fill=(80, 100, 40))


def _rambutan(d, x, y, r, rng) -> None:
    red, tip = jitter((212, 36, 44), rng, 10), jitter((110, 160, 50), rng, 12)
    w = max(2, int(r * 0.09))
    for k in range(30):
        a = math.radians(k * 12 + rng.uniform(-4, 4))
        c, s = math.cos(a), math.sin(a)
        d.line((x + c * r * 0.8, y + s * r * 0.8, x + c * r * 1.25, y + s * r * 1.25), red, w)
        d.line((x + c * r * 1.12, y + s * r * 1.12, x + c * r * 1.3, y + s * r * 1.3), tip, w)
    d.ellipse((x - r * 0.95, y - r * 0.95, x + r * 0.95, y + r * 0.95), fill=red)


def _banana(d, x, y, r, rng) -> None:
    rot = math.radians(rng.uniform(-30, 30))

    def p(a_deg: float, dy: float, rad: float) -> Point:
        a = math.radians(a_deg)
        px, py = rad * math.cos(a), dy + rad * math.sin(a)
        return (
            x + px * math.cos(rot) - py * math.sin(rot),
            y + px * math.sin(rot) + py * math.cos(rot),
        )

    outer = [p(a, -0.6 * r, 1.4 * r) for a in range(18, 163, 6)]
    inner = [p(a, -0.95 * r, 1.33 * r) for a in range(150, 29, -6)]
    d.polygon(outer + inner, fill=jitter((246, 214, 40), rng, 8), outline=(186, 148, 18))
    for end in (outer[0], outer[-1]):
        d.ellipse(
            (end[0] - r * 0.1, end[1] - r * 0.1, end[0] + r * 0.1, end[1] + r * 0.1),
            fill=(92, 62, 22),
        )


def _dragon_fruit(d, x, y, r, rng) -> None:
    green, pink = jitter((118, 180, 48), rng, 10), jitter((226, 40, 122), rng, 10)
    for k in range(9):
        a = math.radians(k * 40 + rng.uniform(-8, 8))
        c, s = math.cos(a), math.sin(a)
        tip = (x + c * r * 1.3, y + s * r * 1.3)
        base = [(x + math.cos(a + o) * r * 0.8, y + math.sin(a + o) * r * 0.8) for o in (-0.3, 0.3)]
        d.polygon([base[0], tip, base[1]], fill=green)
    d.ellipse((x - r * 0.86, y - r, x + r * 0.86, y + r), fill=pink)
    for dx, dy in ((-0.3, -0.2), (0.3, 0.15), (-0.1, 0.5)):
        bx, by = x + dx * r, y + dy * r
        d.polygon(
            [(bx - r * 0.16, by + r * 0.1), (bx, by - r * 0.3), (bx + r * 0.16, by + r * 0.1)],
            fill=green,
        )


def _coconut(d, x, y, r, rng) -> None:
    d.ellipse(
        (x - r, y - r, x + r, y + r),
        fill=jitter((118, 72, 36), rng, 8),
        outline=(78, 46, 20),
        width=max(1, int(r * 0.06)),
    )
    for k in range(7):
        a = math.radians(k * 51 + rng.uniform(0, 20))
        c, s = math.cos(a), math.sin(a)
        d.line(
            (x + c * r * 0.3, y + s * r * 0.3, x + c * r * 0.8, y + s * r * 0.8),
            fill=(92, 56, 26),
            width=max(1, int(r * 0.05)),
        )
    for dx, dy in ((-0.22, -0.5), (0.22, -0.5), (0.0, -0.25)):
        ex, ey = x + dx * r, y + dy * r
        d.ellipse((ex - r * 0.11, ey - r * 0.11, ex + r * 0.11, ey + r * 0.11), fill=(46, 28, 14))


def _mango(d, x, y, r, rng) -> None:
    rot = math.radians(rng.uniform(-35, 35))

    def p(px: float, py: float) -> Point:
        return (
            x + px * math.cos(rot) - py * math.sin(rot),
            y + px * math.sin(rot) + py * math.cos(rot),
        )

    body = [
        p(r * 1.05 * math.cos(t) * (1 + 0.12 * math.sin(t)), r * 0.74 * math.sin(t))
        for t in (k * math.pi / 18 for k in range(36))
    ]
    d.polygon(body, fill=jitter((250, 150, 28), rng, 8))
    blush = [
        p(r * 0.45 + r * 0.4 * math.cos(t), -r * 0.2 + r * 0.3 * math.sin(t))
        for t in (k * math.pi / 8 for k in range(16))
    ]
    d.polygon(blush, fill=(236, 96, 40))
    d.polygon(
        [p(-r * 1.0, -r * 0.1), p(-r * 1.35, -r * 0.55), p(-r * 0.85, -r * 0.45)],
        fill=(60, 140, 50),
    )


_FRUIT_DRAW = {
    "durian": (_durian, 1.3), "mangosteen": (_mangosteen, 1.1), "rambutan": (_rambutan, 1.3),
    "banana": (_banana, 1.35), "dragon_fruit": (_dragon_fruit, 1.3),
    "coconut": (_coconut, 1.0), "mango": (_mango, 1.3),
}  # fmt: skip


def render_fruit(
    rng: random.Random | int | None = None,
    *,
    fruit: str | None = None,
    count: int | None = None,
) -> tuple[Image.Image, dict]:
    """1-3 tropical fruits of one kind, non-overlapping, on a light background.

    Args:
        rng: Source of randomness (a ``random.Random`` or a seed).
        fruit: One of :data:`FRUITS` (default: drawn from ``rng``).
        count: 1-3 (default: drawn from ``rng``).

    Returns:
        ``(image, facts)``: a 64x64 RGB image and ``{"kind": "fruit", "fruit", "count"}``.
    """
    rng = as_rng(rng)
    fruit = fruit or rng.choice(FRUITS)
    count = count or rng.choice((1, 2, 3))
    if fruit not in _FRUIT_DRAW or count not in (1, 2, 3):
        raise ValueError(f"unknown fruit facts: {fruit=}, {count=} (count is 1-3)")
    draw, bound = _FRUIT_DRAW[fruit]
    img = Image.new("RGB", (HI, HI), background(rng))
    d = ImageDraw.Draw(img)
    # One size for every count, as in scenes: three fruits cover three times the area of one,
    # so "how many" agrees with how much of the image they fill, on fruits and shapes alike.
    # (v2 shrank fruits as their count grew: the total area told nothing, and learning fruit
    # counts unlearned the scene counts the model had.)
    bounds = [rng.uniform(*FRUIT_HALF_SIZE) * bound] * count
    for (cx, cy), b in zip(place(rng, bounds), bounds, strict=True):
        draw(d, cx * SS, cy * SS, b / bound * SS, rng)
    return finish(img), {"kind": "fruit", "fruit": fruit, "count": count}
