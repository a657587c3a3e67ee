"""Errors a user can act on. Their messages are meant to be shown as they are (CLI, UI)."""


class CartoonError(Exception):
    """Base class: something the user gave us (an image, a style, a weights folder) cannot be used."""


class ImageError(CartoonError, ValueError):
    """The input is not an image we can cartoonize (unreadable, truncated, too small, too large, animated)."""


class WeightsError(CartoonError, OSError):
    """Weights are missing, corrupt or of the wrong format."""


class StyleError(CartoonError, KeyError):
    """Unknown style name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class VideoError(CartoonError, ValueError):
    """The input is not a video we can cartoonize, or an option does not fit it. The message is for the user."""
