"""Photo -> cartoon with a saliency-augmented CartoonGAN generator."""
from .engine import CartoonResult, Cartoonizer
from .errors import CartoonError, ImageError, StyleError, WeightsError
from .imageio import RGBImage, load_image, save_image
from .network import CONFIGS, Generator, GeneratorConfig
from .registry import DEFAULT_STYLE, STYLES, Style, available_styles, get_style
from .studio import MODES, Studio, StudioResult, cartoonize
from .weights import from_pretrained, save_pretrained

__all__ = [
    "CONFIGS", "CartoonError", "CartoonResult", "Cartoonizer", "DEFAULT_STYLE", "Generator", "GeneratorConfig",
    "ImageError", "MODES", "RGBImage", "STYLES", "Style", "StyleError", "Studio", "StudioResult", "WeightsError",
    "available_styles", "cartoonize", "from_pretrained", "get_style", "load_image", "save_image", "save_pretrained",
]
