"""The one registry of styles: what the app lists, what `--style` accepts, what training configs name."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .errors import CartoonError, StyleError

# The weights format's files (cartoon/weights.py writes and reads them; named here, where no torch is imported).
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
# Shipped weights live in the repository's weights/ folder; CARTOON_WEIGHTS_DIR points elsewhere (e.g. a volume).
WEIGHTS_DIR = Path(os.environ.get("CARTOON_WEIGHTS_DIR", Path(__file__).resolve().parent.parent / "weights"))


@dataclasses.dataclass(frozen=True)
class Style:
    name: str
    display_name: str
    description: str
    mode: str  # "scene" or "portrait": the kind of input it was trained on
    config: str  # generator config it is trained with (cartoon/network.py); the weights' config.json rules
    folder: str | None = None  # under WEIGHTS_DIR
    hub_repo: str | None = None  # Hugging Face Hub repo id, used when the local folder has no weights
    hub_filename: str = WEIGHTS_NAME
    hub_revision: str | None = None
    path: str | None = None  # a style outside the registry: its weights folder or Hub repo id, as given

    @property
    def local_dir(self) -> Path | None:
        if self.path is not None:
            return Path(self.path)
        return WEIGHTS_DIR / self.folder if self.folder else None

    def has_local_weights(self) -> bool:
        d = self.local_dir
        return d is not None and (d / WEIGHTS_NAME).is_file() and (d / CONFIG_NAME).is_file()

    def is_available(self) -> bool:
        """Weights are on disk, or can be fetched from the Hub."""
        return self.has_local_weights() or self.hub_repo is not None

    def source(self) -> tuple[str, str | None, str]:
        """(folder or repo id, revision, filename) to hand to `from_pretrained`."""
        if self.path is not None:
            return self.path, None, WEIGHTS_NAME
        if self.has_local_weights() or not self.hub_repo:
            return str(self.local_dir), None, WEIGHTS_NAME
        return self.hub_repo, self.hub_revision, self.hub_filename


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("ghibli", "Ghibli (Hayao)", "Studio Ghibli scenery: soft painted skies, clean outlines, warm flat colour.",
              mode="scene", config="wide-res-smooth-guard", folder="ghibli"),
        Style("shinkai", "Shinkai", "Makoto Shinkai scenery: saturated blue skies, bright light, crisp detail.",
              mode="scene", config="wide-res-smooth-guard", folder="shinkai"),
        Style("portrait", "Portrait", "photo2cartoon-like portraits: aligned faces on white, smooth skin, big eyes.",
              mode="portrait", config="lite-res", folder="portrait"),
    )
}
DEFAULT_STYLE = "ghibli"
DEFAULT_PORTRAIT_STYLE = "portrait"


def get_style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise StyleError(f"unknown style {name!r}; known styles: {', '.join(STYLES)}") from None


def resolve_style(style: str | os.PathLike | Style) -> Style:
    """The one resolution of what a caller names a style by: a `Style` as it is, a registered name, or else a
    weights folder or Hub repo id (a `Style` with `path`, displayed by the folder's name or as the repo id).
    StyleError for a bare name that is neither registered nor a folder."""
    if isinstance(style, Style):
        return style
    if not isinstance(style, (str, os.PathLike)):
        raise CartoonError(f"style must be a style name, a weights folder or a Hub repo id; got {type(style).__name__}")
    key = os.fspath(style)
    if key in STYLES:
        return STYLES[key]
    folder = Path(key).exists()
    if "/" not in key and not folder:
        get_style(key)  # raises with the list of known styles
    return Style(key, Path(key).name if folder else key, "", mode="scene", config="", path=key)


def available_styles(mode: str | None = None) -> list[Style]:
    """Styles whose weights can be loaded, optionally only those made for `mode`."""
    return [s for s in STYLES.values() if s.is_available() and (mode is None or s.mode == mode)]
