"""What a request may ask for (mode, background, strength, tile size) and the one check of each.

Each front end checks an option once, where it comes in: `Studio.run` / `Studio.video`, `Cartoonizer.__call__` /
`batch`, `cartoonize_video`, the CLI's arguments; what they hand on inside the library is not checked again.
No torch here: the app, the CLI and `facecrop` import these without loading a model.
"""
from __future__ import annotations

from .errors import CartoonError
from .tiling import MIN_TILE

MODES = ("auto", "scene", "portrait")
BACKGROUNDS = ("photo", "cartoon")  # portrait mode: what is around the faces


def check_mode(mode: str, what: str = "mode") -> str:
    if mode not in MODES:
        raise CartoonError(f"{what} must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_background(background: str, what: str = "background") -> str:
    if background not in BACKGROUNDS:
        raise CartoonError(f"{what} must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    return background


def check_strength(strength: float, what: str = "strength") -> float:
    """`strength` as a float in [0, 1]; CartoonError naming `what` (e.g. "--strength") otherwise."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise CartoonError(f"{what} must be a number in [0, 1], got {strength!r}") from None
    if not 0.0 <= s <= 1.0:  # (NaN fails this too)
        raise CartoonError(f"{what} must be in [0, 1], got {s:g}")
    return s


def check_tile(tile: int, what: str = "tile size") -> int:
    """A tile size: a whole number of pixels, at least MIN_TILE."""
    try:
        t = int(tile)
        ok = t == tile and t >= MIN_TILE
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise CartoonError(f"{what} must be a whole number of pixels, at least {MIN_TILE}; got {tile!r}")
    return t
