"""The flags of the 11 Southeast-Asian countries, simplified but with the real colours and layout.

Emblems are reduced to simple shapes (Cambodia's Angkor Wat to a five-spired silhouette,
Brunei's crest to crescent, mast, parasol and hands). Each drawer paints a ``w`` x ``h``
hi-res flag; :func:`render_flag` adds the variation: size 60-100% of the canvas width,
position, an optional slight wave with shading, and a brightness change.
"""

from __future__ import annotations

import math
import random
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from sealion_vl.nano.synth.draw import HI, SIZE, SS, as_rng, background, finish, star
from sealion_vl.nano.synth.world import COUNTRIES, FLAG_RATIO

RED = (206, 17, 38)
WHITE = (255, 255, 255)
YELLOW = (252, 209, 22)


def _stripes(d: ImageDraw.ImageDraw, w: int, h: int, bands: list[tuple[float, tuple]]) -> None:
    """Horizontal bands given as (relative height, colour), top to bottom."""
    total, y = sum(b for b, _ in bands), 0.0
    for b, colour in bands:
        d.rectangle((0, round(y), w, round(y + b / total * h)), fill=colour)
        y += b / total * h


def _brunei(d, w, h) -> None:
    d.rectangle((0, 0, w, h), fill=(247, 224, 23))
    top, t, slope = 0.1 * h, 0.2 * h, 0.55 * h / w
    d.polygon([(0, top), (w, top + slope * w), (w, top + t + slope * w), (0, top + t)], WHITE)
    b = 0.15 * h
    d.polygon([(0, top + t), (w, top + t + slope * w), (w, top + t + b + slope * w),
               (0, top + t + b)], (0, 0, 0))  # fmt: skip
    cx, red = w / 2, (207, 16, 32)
    r = 0.24 * h
    d.arc((cx - r, 0.3 * h, cx + r, 0.3 * h + 2 * r), 15, 165, fill=red, width=int(0.07 * h))
    d.rectangle((cx - 0.025 * h, 0.24 * h, cx + 0.025 * h, 0.72 * h), fill=red)
    d.polygon([(cx - 0.12 * h, 0.3 * h), (cx, 0.18 * h), (cx + 0.12 * h, 0.3 * h)], red)
    for s in (-1, 1):
        d.rectangle((cx + s * 0.3 * h - 0.03 * h, 0.42 * h, cx + s * 0.3 * h + 0.03 * h,
                     0.6 * h), fill=red)  # fmt: skip
    d.rectangle((cx - 0.18 * h, 0.76 * h, cx + 0.18 * h, 0.82 * h), fill=red)


def _cambodia(d, w, h) -> None:
    _stripes(d, w, h, [(1, (3, 46, 161)), (2, (224, 0, 37)), (1, (3, 46, 161))])
    line = max(1, int(0.012 * h))
    d.rectangle((0.3 * w, 0.63 * h, 0.7 * w, 0.69 * h), fill=WHITE, outline=(0, 0, 0), width=line)
    d.rectangle((0.34 * w, 0.52 * h, 0.66 * w, 0.63 * h), fill=WHITE, outline=(0, 0, 0), width=line)
    for x, apex in ((0.37, 0.42), (0.43, 0.36), (0.5, 0.3), (0.57, 0.36), (0.63, 0.42)):
        pts = [(x * w - 0.035 * w, 0.52 * h), (x * w, apex * h), (x * w + 0.035 * w, 0.52 * h)]
        d.polygon(pts, fill=WHITE, outline=(0, 0, 0))


def _indonesia(d, w, h) -> None:
    _stripes(d, w, h, [(1, RED), (1, WHITE)])


def _laos(d, w, h) -> None:
    _stripes(d, w, h, [(1, RED), (2, (0, 40, 104)), (1, RED)])
    r = 0.2 * h
    d.ellipse((w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r), fill=WHITE)


def _malaysia(d, w, h) -> None:
    _stripes(d, w, h, [(1, (204, 0, 1) if i % 2 == 0 else WHITE) for i in range(14)])
    cw, ch = w / 2, h * 8 / 14
    d.rectangle((0, 0, cw, ch), fill=(1, 0, 102))
    cx, cy, r = 0.34 * cw, ch / 2, 0.4 * ch
    yellow = (255, 204, 0)
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=yellow)
    r2, off = 0.34 * ch, 0.1 * ch
    d.ellipse((cx + off - r2, cy - r2, cx + off + r2, cy + r2), fill=(1, 0, 102))
    d.polygon(star(0.7 * cw, cy, 0.3 * ch, 0.13 * ch, n=14), fill=yellow)


def _myanmar(d, w, h) -> None:
    _stripes(d, w, h, [(1, (254, 203, 0)), (1, (52, 178, 51)), (1, (234, 40, 57))])
    d.polygon(star(w / 2, 0.55 * h, 0.45 * h, 0.45 * h * 0.382), fill=WHITE)


def _philippines(d, w, h) -> None:
    _stripes(d, w, h, [(1, (0, 56, 168)), (1, RED)])
    apex = h * math.sqrt(3) / 2
    d.polygon([(0, 0), (apex, h / 2), (0, h)], fill=WHITE)
    sx, sy, r = apex / 3, h / 2, 0.09 * h
    for k in range(8):
        a = math.radians(k * 45)
        tip = (sx + 0.21 * h * math.cos(a), sy + 0.21 * h * math.sin(a))
        side = [(sx + r * math.cos(a + o), sy + r * math.sin(a + o)) for o in (-0.35, 0.35)]
        d.polygon([side[0], tip, side[1]], fill=YELLOW)
    d.ellipse((sx - r, sy - r, sx + r, sy + r), fill=YELLOW)
    for x, y in ((0.09 * h, 0.1 * h), (0.09 * h, 0.9 * h), (apex - 0.12 * h, h / 2)):
        d.polygon(star(x, y, 0.055 * h, 0.022 * h), fill=YELLOW)


def _singapore(d, w, h) -> None:
    red = (239, 51, 64)
    _stripes(d, w, h, [(1, red), (1, WHITE)])
    cx, cy, r = 0.24 * h, 0.25 * h, 0.16 * h
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=WHITE)
    r2, off = 0.15 * h, 0.055 * h
    d.ellipse((cx + off - r2, cy - r2, cx + off + r2, cy + r2), fill=red)
    for k in range(5):
        a = math.radians(-90 + k * 72)
        x, y = 0.33 * h + 0.075 * h * math.cos(a), cy + 0.075 * h * math.sin(a)
        d.polygon(star(x, y, 0.035 * h, 0.014 * h), fill=WHITE)


def _thailand(d, w, h) -> None:
    red, blue = (165, 25, 49), (45, 42, 74)
    _stripes(d, w, h, [(1, red), (1, WHITE), (2, blue), (1, WHITE), (1, red)])


def _timor_leste(d, w, h) -> None:
    d.rectangle((0, 0, w, h), fill=(220, 36, 31))
    d.polygon([(0, 0), (w / 2, h / 2), (0, h)], fill=(255, 199, 38))
    d.polygon([(0, 0), (w / 3, h / 2), (0, h)], fill=(0, 0, 0))
    d.polygon(star(w / 9, h / 2, 0.14 * h, 0.055 * h, rot=-60), fill=WHITE)


def _vietnam(d, w, h) -> None:
    d.rectangle((0, 0, w, h), fill=(218, 37, 29))
    d.polygon(star(w / 2, h / 2 + 0.02 * h, 0.3 * h, 0.3 * h * 0.382), fill=(255, 255, 0))


_DRAW = {
    "brunei": _brunei, "cambodia": _cambodia, "indonesia": _indonesia, "laos": _laos,
    "malaysia": _malaysia, "myanmar": _myanmar, "philippines": _philippines,
    "singapore": _singapore, "thailand": _thailand, "timor_leste": _timor_leste,
    "vietnam": _vietnam,
}  # fmt: skip
assert set(_DRAW) == set(COUNTRIES), "world.yaml countries and flag drawers disagree"


def flag_image(country: str, width: int) -> Image.Image:
    """The plain flag (no variation), ``width`` pixels wide, with a thin grey border."""
    if country not in _DRAW:
        raise ValueError(f"unknown country {country!r}; expected one of {COUNTRIES}")
    w, h = width, max(2, round(width * FLAG_RATIO[country]))
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    _DRAW[country](d, w, h)
    # The border keeps white flag edges apart from the light background.
    d.rectangle((0, 0, w - 1, h - 1), outline=(110, 110, 110), width=max(1, SS // 2))
    return img


@cache
def _gain_lut(percent: int) -> list[int]:
    return [min(255, v * percent // 100) for v in range(256)] * 3


def _wave(flag: np.ndarray, rng: random.Random, amp: float, gain: float):
    """Shift each column by a sine, shade it and scale its brightness by ``gain``.

    Returns ``(pixels, alpha)`` as uint8 arrays ``2 * ceil(amp)`` rows taller than ``flag``.
    """
    h, w, _ = flag.shape
    pad = int(math.ceil(amp))
    phase, length = rng.uniform(0, 2 * math.pi), w * rng.uniform(0.7, 1.3)
    t = 2 * math.pi * np.arange(w) / length + phase
    dy = np.round(pad + amp * np.sin(t)).astype(np.intp)
    rows = np.arange(h + 2 * pad)[:, None] - dy[None, :]
    valid = (rows >= 0) & (rows < h)
    src = flag.reshape(-1, 3).take(np.clip(rows, 0, h - 1) * w + np.arange(w)[None, :], axis=0)
    # Light falls on the crests: x (1 +- 0.1), in 1/128 steps (integer maths is 3x faster).
    shade = np.round(128 * gain * (1.0 + 0.1 * np.cos(t))).astype(np.uint16)
    out = (src * shade[None, :, None]) >> 7
    return np.minimum(out, 255).astype(np.uint8), (valid * np.uint8(255))


def render_flag(
    country: str,
    rng: random.Random | int | None = None,
    *,
    scale: float | None = None,
    wave: bool | None = None,
) -> Image.Image:
    """The flag of ``country`` on a light background, 64x64 RGB, with random variation.

    Args:
        country: One of :data:`COUNTRIES` (e.g. ``"vietnam"``, ``"timor_leste"``).
        rng: Source of randomness (a ``random.Random`` or a seed).
        scale: Flag width as a share of the canvas (default: uniform in 0.6-1.0).
        wave: Draw a slight wave (default: half of the time).

    Returns:
        A 64x64 RGB ``PIL.Image``.
    """
    rng = as_rng(rng)
    if country not in _DRAW:
        raise ValueError(f"unknown country {country!r}; expected one of {COUNTRIES}")
    canvas = Image.new("RGB", (HI, HI), background(rng))
    scale = rng.uniform(0.6, 1.0) if scale is None else scale
    wave = rng.random() < 0.5 if wave is None else wave
    flag = flag_image(country, round(scale * HI))
    gain = rng.randint(86, 110)  # brightness, in percent
    amp = rng.uniform(0.02, 0.045) * flag.height if wave else 0.0
    if amp >= 1:
        pixels, alpha = _wave(np.asarray(flag), rng, amp, gain / 100)
        h, w = alpha.shape
        x0, y0 = rng.randint(0, HI - w), rng.randint(0, HI - h)
        canvas.paste(Image.fromarray(pixels, "RGB"), (x0, y0), Image.fromarray(alpha, "L"))
    else:
        flag = flag.point(_gain_lut(gain))
        canvas.paste(flag, (rng.randint(0, HI - flag.width), rng.randint(0, HI - flag.height)))
    return finish(canvas)


__all__ = ["SIZE", "flag_image", "render_flag"]
