"""Generated avatars: a simple geometric face in SVG, drawn from a citizen's avatar seed.

Why generated: the system publishes faces (blacklist billboards, station monitors), and no real
person's photo may appear, so every "photo" is a drawing made from a number: head shape, hair, eyes,
mouth and colours all come from the seed. It is rendered lazily, when a page asks for one, so a
population of millions costs nothing until someone looks; the same seed always gives the same
picture, byte for byte. The SVG is self-contained (no fonts, no links, no CDN).

Why in the core and not in the simulator: the pages draw it for any store's citizens (the seed is a column of
`citizens`), and a server must not load the simulator to do so (`tests/test_architecture.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

SIZE = 128
BACKGROUNDS = ("#f2d7d5", "#d6eaf8", "#d5f5e3", "#fcf3cf", "#e8daef", "#fae5d3", "#d1f2eb", "#eaecee")
SKINS = ("#f6d7b0", "#eec39a", "#e0ac69", "#c68642", "#a8744f", "#f1c27d", "#ffdbac", "#d9a066")
HAIR_YOUNG = ("#1b1b1b", "#2b1d14", "#3b2a1e", "#4a3728", "#141414")
HAIR_GREY, HAIR_WHITE = "#8d8d8d", "#d9d9d9"
CLOTHES = ("#34495e", "#2e86c1", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#7f8c8d", "#16a085")
EYES = ("#1b1b1b", "#2b1d14", "#3e2723")
HAIR_STYLES = {"M": ("crop", "side", "buzz", "spiky", "bald"), "F": ("long", "bob", "bun", "fringe", "ponytail")}


class _Draw:
    """splitmix64: a tiny, fixed generator, so the picture depends on the seed and nothing else."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def pick(self, options: tuple[str, ...]) -> str:
        return options[self.next() % len(options)]

    def between(self, low: float, high: float) -> float:
        return round(low + (high - low) * (self.next() / 2**64), 1)

    def chance(self, p: float) -> bool:
        return self.next() / 2**64 < p


@dataclass(frozen=True)
class Face:
    """What the seed decided; kept separate from drawing so tests and pages can read it."""

    sex: str
    background: str
    skin: str
    hair: str
    hair_style: str
    clothes: str
    eyes: str
    head_rx: float
    head_ry: float
    eye_style: str
    mouth: str
    glasses: bool
    blush: bool


def face(seed: int, sex: str | None = None, age: int | None = None) -> Face:
    """The features of the avatar for `seed`; `sex` and `age` (if known) steer hair style and greying."""
    d = _Draw(seed)
    chosen = sex if sex in ("M", "F") else ("M" if d.chance(0.5) else "F")
    grey = age is not None and (age >= 75 or (age >= 55 and d.chance((age - 50) / 30)))
    hair = (HAIR_WHITE if age is not None and age >= 75 else HAIR_GREY) if grey else d.pick(HAIR_YOUNG)
    styles: tuple[str, ...] = HAIR_STYLES[chosen]
    if chosen == "M" and (age is None or age < 45):
        styles = styles[:-1]  # no bald young men
    return Face(
        sex=chosen,
        background=d.pick(BACKGROUNDS),
        skin=d.pick(SKINS),
        hair=hair,
        hair_style=d.pick(styles),
        clothes=d.pick(CLOTHES),
        eyes=d.pick(EYES),
        head_rx=d.between(27, 33),
        head_ry=d.between(33, 39),
        eye_style=d.pick(("dot", "oval", "smile")),
        mouth=d.pick(("smile", "flat", "open", "small")),
        glasses=d.chance(0.3 if age is not None and age >= 40 else 0.15),
        blush=d.chance(0.35 if chosen == "F" else 0.1),
    )


def avatar_svg(seed: int, sex: str | None = None, age: int | None = None) -> str:
    """A self-contained SVG (128×128) of the generated face for `seed`. Deterministic."""
    f = face(seed, sex, age)
    cx, cy = SIZE / 2, 58.0
    top = cy - f.head_ry
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" width="{SIZE}" height="{SIZE}" '
        f'role="img" aria-label="generated avatar">',
        f'<rect width="{SIZE}" height="{SIZE}" rx="16" fill="{f.background}"/>',
    ]
    parts += _hair_back(f, cx, cy)
    parts += [
        f'<path d="M{cx - 46} {SIZE} Q{cx - 44} {cy + 42} {cx} {cy + 40} Q{cx + 44} {cy + 42} {cx + 46} {SIZE} Z" '
        f'fill="{f.clothes}"/>',
        f'<rect x="{cx - 9}" y="{cy + f.head_ry - 8}" width="18" height="16" fill="{f.skin}"/>',
        f'<ellipse cx="{cx - f.head_rx}" cy="{cy + 2}" rx="5" ry="7" fill="{f.skin}"/>',
        f'<ellipse cx="{cx + f.head_rx}" cy="{cy + 2}" rx="5" ry="7" fill="{f.skin}"/>',
        f'<ellipse cx="{cx}" cy="{cy}" rx="{f.head_rx}" ry="{f.head_ry}" fill="{f.skin}"/>',
    ]
    parts += _hair_front(f, cx, top)
    ex, ey = 11.0, cy - 2
    for side in (-1, 1):
        x = cx + side * ex
        parts.append(
            f'<path d="M{x - 6} {ey - 9} Q{x} {ey - 12} {x + 6} {ey - 9}" stroke="{f.hair}" stroke-width="2.2" '
            'fill="none" stroke-linecap="round"/>'
        )
        if f.eye_style == "dot":
            parts.append(f'<circle cx="{x}" cy="{ey}" r="2.6" fill="{f.eyes}"/>')
        elif f.eye_style == "oval":
            parts.append(f'<ellipse cx="{x}" cy="{ey}" rx="4.5" ry="3.2" fill="#ffffff"/>')
            parts.append(f'<circle cx="{x}" cy="{ey}" r="2.2" fill="{f.eyes}"/>')
        else:
            parts.append(
                f'<path d="M{x - 4} {ey + 1} Q{x} {ey - 4} {x + 4} {ey + 1}" stroke="{f.eyes}" stroke-width="2" '
                'fill="none" stroke-linecap="round"/>'
            )
        if f.blush:
            parts.append(f'<ellipse cx="{x + side * 5}" cy="{ey + 10}" rx="5" ry="3" fill="#e6877a" opacity="0.35"/>')
        if f.glasses:
            parts.append(f'<circle cx="{x}" cy="{ey}" r="7.5" stroke="#333333" stroke-width="1.6" fill="none"/>')
    if f.glasses:
        parts.append(f'<path d="M{cx - 3.5} {ey} L{cx + 3.5} {ey}" stroke="#333333" stroke-width="1.6"/>')
    parts.append(
        f'<path d="M{cx} {ey + 3} L{cx - 3} {ey + 12} L{cx + 1} {ey + 13}" stroke="#00000033" stroke-width="1.6" '
        'fill="none" stroke-linecap="round"/>'
    )
    my = cy + 18
    mouth = {
        "smile": f'<path d="M{cx - 8} {my} Q{cx} {my + 7} {cx + 8} {my}" stroke="#7b3b3b" stroke-width="2.2" '
        'fill="none" stroke-linecap="round"/>',
        "flat": f'<path d="M{cx - 6} {my + 2} L{cx + 6} {my + 2}" stroke="#7b3b3b" stroke-width="2.2" '
        'stroke-linecap="round"/>',
        "open": f'<path d="M{cx - 8} {my} Q{cx} {my + 10} {cx + 8} {my} Z" fill="#7b3b3b"/>',
        "small": f'<ellipse cx="{cx}" cy="{my + 2}" rx="3" ry="2" fill="#7b3b3b"/>',
    }[f.mouth]
    parts += [mouth, "</svg>"]
    return "".join(parts)


def _hair_back(f: Face, cx: float, cy: float) -> list[str]:
    """Hair that falls behind the head and shoulders (long hair, bob, ponytail)."""
    rx, ry = f.head_rx, f.head_ry
    if f.hair_style == "long":
        return [f'<rect x="{cx - rx - 6}" y="{cy - ry + 6}" width="{2 * rx + 12}" height="{ry + 40}" rx="18" '
                f'fill="{f.hair}"/>']  # fmt: skip
    if f.hair_style == "bob":
        return [f'<rect x="{cx - rx - 5}" y="{cy - ry + 4}" width="{2 * rx + 10}" height="{ry + 18}" rx="14" '
                f'fill="{f.hair}"/>']  # fmt: skip
    if f.hair_style == "ponytail":
        return [f'<ellipse cx="{cx + rx + 4}" cy="{cy + 6}" rx="8" ry="20" fill="{f.hair}"/>']
    return []


def _hair_front(f: Face, cx: float, top: float) -> list[str]:
    """Hair on top of the head, over the skin."""
    rx = f.head_rx
    cap = f"M{cx - rx - 1} {top + 24} Q{cx - rx} {top - 4} {cx} {top - 3} Q{cx + rx} {top - 4} {cx + rx + 1} {top + 24}"
    style = f.hair_style
    if style == "bald":
        return [f'<path d="M{cx - rx} {top + 30} Q{cx - rx - 2} {top + 18} {cx - rx + 6} {top + 14}" '
                f'stroke="{f.hair}" stroke-width="4" fill="none"/>']  # fmt: skip
    if style == "buzz":
        return [f'<path d="{cap} Q{cx} {top + 6} {cx - rx - 1} {top + 24} Z" fill="{f.hair}" opacity="0.85"/>']
    if style == "spiky":
        spikes = " ".join(f"L{cx - rx + i * rx / 4} {top - 8 if i % 2 else top + 2}" for i in range(1, 8))
        return [f'<path d="M{cx - rx - 1} {top + 20} {spikes} L{cx + rx + 1} {top + 20} Q{cx} {top + 8} '
                f'{cx - rx - 1} {top + 20} Z" fill="{f.hair}"/>']  # fmt: skip
    if style == "side":
        return [f'<path d="{cap} Q{cx + 6} {top + 8} {cx - 10} {top + 16} Q{cx - rx + 4} {top + 12} {cx - rx - 1} '
                f'{top + 24} Z" fill="{f.hair}"/>']  # fmt: skip
    if style == "fringe":
        return [f'<path d="{cap} L{cx + rx - 2} {top + 18} Q{cx} {top + 22} {cx - rx + 2} {top + 18} Z" '
                f'fill="{f.hair}"/>']  # fmt: skip
    out = [f'<path d="{cap} Q{cx} {top + 12} {cx - rx - 1} {top + 24} Z" fill="{f.hair}"/>']
    if style == "bun":
        out.append(f'<circle cx="{cx}" cy="{top - 6}" r="11" fill="{f.hair}"/>')
    return out
