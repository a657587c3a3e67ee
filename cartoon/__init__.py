"""Photo -> cartoon with a saliency-augmented CartoonGAN generator.

The names below are loaded on first use (PEP 562): `import cartoon` or `import cartoon.errors` imports no torch,
and the onnxruntime backend runs without it.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "CartoonResult": "engine", "Cartoonizer": "engine",
    "CartoonError": "errors", "ImageError": "errors", "StyleError": "errors", "WeightsError": "errors",
    "RGBImage": "imageio", "load_image": "imageio", "save_image": "imageio",
    "CONFIGS": "network", "Generator": "network", "GeneratorConfig": "network",
    "MODES": "options",
    "DEFAULT_STYLE": "registry", "STYLES": "registry", "Style": "registry", "available_styles": "registry",
    "get_style": "registry",
    "Studio": "studio", "StudioResult": "studio", "cartoonize": "studio",
    "from_pretrained": "weights", "save_pretrained": "weights",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'cartoon' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
