"""Video without flicker: what happens between consecutive frames (cartoon/video.py reads and writes the files).

Instance norm and CBAM's channel attention normalise every frame with statistics of that frame, and those jump from
frame to frame (noise, small motion, an object entering the picture): the cartoon's colours pump.  Here each frame's
statistics are recorded on a small copy (`Cartoonizer.statistics`, as tiling does), averaged over time with an
exponential moving average (`StatsSmoother`, time constant `smoothing` seconds, using the real frame times, so
variable frame rates are handled), and the frame is run with the averaged statistics (`Cartoonizer.stylize`).  At a
scene cut (`CutDetector`) the average restarts from the new shot's own statistics.  That removes the global pumping;
what remains is local (textures and outlines that the generator redraws differently as sensor noise and compression
change), which `TemporalBlend` removes by mixing each cartoon with the previous output warped along the photo's
optical flow, where the flow is reliable.  `FrameStylizer` puts the three together; `flicker_ratio` measures it.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import cv2
import numpy as np

from .engine import Cartoonizer
from .errors import VideoError
from .strength import apply_strength

DEFAULT_SMOOTHING = 0.5  # s: time constant of the statistics' moving average
DEFAULT_BLEND = 0.7  # weight of the motion-compensated previous output where the motion is tracked
STATS_SIDE = 384  # px: long side of the copy each frame's statistics are recorded on


class CutDetector:
    """Hard cuts from the change between consecutive frames' thumbnails (mean absolute difference in 0..1).

    A frame starts a new shot when its change is at least `min_change` and at least `ratio` times the shot's
    recent average change, so a fast pan (large changes all the time) is not a string of cuts (at most its first
    frame counts as one: harmless, the averages restart).  The first frame always starts a shot.
    """

    def __init__(self, min_change: float = 0.1, ratio: float = 3.0, side: int = 64):
        self.min_change, self.ratio, self.side = float(min_change), float(ratio), int(side)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._avg = self.min_change / self.ratio

    def change(self, rgb: np.ndarray) -> float | None:
        """The change from the previous frame (None for the first one); advances the detector."""
        h, w = rgb.shape[:2]
        s = self.side / max(h, w)
        thumb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32) / 255.0
        prev, self._prev = self._prev, thumb
        if prev is None or prev.shape != thumb.shape:
            return None
        return float(np.abs(thumb - prev).mean())

    def __call__(self, rgb: np.ndarray) -> bool:
        d = self.change(rgb)
        if d is None:
            self._avg = self.min_change / self.ratio
            return True
        cut = d >= self.min_change and d >= self.ratio * self._avg
        # after a cut the average starts at that change: if the next ones are as large (a fast pan), they are not cuts
        self._avg = d if cut else 0.7 * self._avg + 0.3 * d
        return cut


class StatsSmoother:
    """Exponential moving average of the generator's whole-image statistics over time, restarted at cuts.

    `time_constant` in seconds: a statistic recorded `dt` seconds ago weighs exp(-dt / time_constant) as much as
    one recorded now.  0 uses every frame's own statistics (no smoothing).
    """

    def __init__(self, time_constant: float = DEFAULT_SMOOTHING):
        if not time_constant >= 0:
            raise VideoError(f"smoothing must be a time in seconds, at least 0; got {time_constant!r}")
        self.time_constant = float(time_constant)
        self.reset()

    def reset(self) -> None:
        self._state: list[np.ndarray] | None = None
        self._t = 0.0

    def __call__(self, stats: Sequence[np.ndarray], t: float, cut: bool = False) -> list[np.ndarray]:
        """The smoothed statistics at time `t` (s), given this frame's own; `cut` restarts the average."""
        if cut or self._state is None or self.time_constant == 0 or len(stats) != len(self._state):
            self._state = [np.array(s, np.float32) for s in stats]
        else:
            keep = math.exp(-max(0.0, t - self._t) / self.time_constant)
            for acc, s in zip(self._state, stats):
                acc *= keep
                acc += (1.0 - keep) * np.asarray(s, np.float32)
        self._t = t
        return [s.copy() for s in self._state]


def flicker_ratio(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], cuts: Iterable[int] = ()) -> float:
    """mean |out[t] - out[t-1]| / mean |in[t] - in[t-1]| over consecutive frames of the same shot (`cuts`: the
    indices of frames that start a shot; the pair across a cut is left out).  1 means the cartoon changes exactly
    as much as the input does; per-frame statistics make it larger."""
    cuts = set(cuts)
    num = den = 0.0
    for t in range(1, len(inputs)):
        if t in cuts:
            continue
        den += float(np.abs(inputs[t].astype(np.float32) - inputs[t - 1].astype(np.float32)).mean())
        num += float(np.abs(outputs[t].astype(np.float32) - outputs[t - 1].astype(np.float32)).mean())
    if den == 0:
        raise ValueError("the input frames do not change: the ratio is undefined")
    return num / den


class TemporalBlend:
    """Motion-compensated blending of each cartoon with the previous output, where the photo shows the same thing.

    A generator also flickers locally: sensor noise and compression change its textures and outlines from frame to
    frame.  The previous output is warped onto the current frame along the photo's optical flow (OpenCV's DIS, on
    the frames as they go in), and mixed in with weight `strength` * exp(-(e / tolerance)^2), where e is how much the
    photo itself differs from its warped previous frame there (0..255): full blending where the motion is tracked,
    none where something new appears (occlusions, fast motion, outside the previous frame).  Restarted at cuts.
    """

    def __init__(self, strength: float = 0.7, tolerance: float = 8.0):
        if not 0.0 <= strength < 1.0:
            raise VideoError(f"blend must be at least 0 and below 1, got {strength!r}")
        self.strength, self.tolerance = float(strength), float(tolerance)
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # photo, its gray, the output

    def __call__(self, photo: np.ndarray, cartoon: np.ndarray, cut: bool = False) -> np.ndarray:
        """photo (H, W, 3) uint8, its cartoon (H, W, 3) float32 0..255 -> the blended cartoon (float32)."""
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        prev = self._prev
        if cut or prev is None or prev[1].shape != gray.shape or self.strength == 0:
            self._prev = (photo, gray, cartoon)
            return cartoon
        h, w = gray.shape
        flow = self.flow.calc(gray, prev[1], None)  # for each pixel now: where it was in the previous frame
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        warped_photo = cv2.remap(prev[0], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_out = cv2.remap(prev[2], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.abs(photo.astype(np.float32) - warped_photo).mean(axis=2)
        err = cv2.blur(err, (5, 5))
        alpha = self.strength * np.exp(-np.square(err / self.tolerance))
        alpha[(map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)] = 0.0  # not in the previous frame
        out = cartoon + alpha[..., None] * (warped_out - cartoon)
        self._prev = (photo, gray, out)
        return out


class FrameStylizer:
    """Cartoonizes consecutive frames of one clip (same size, in time order) without flicker.

    engine: a Cartoonizer (its `statistics` and `stylize`). strength: in [0, 1], checked by the caller
    (`cartoonize_video`). smoothing: the statistics' time constant in seconds (see StatsSmoother); None runs every
    frame exactly as a photo (its own statistics). blend: strength of the motion-compensated blend with the previous
    output (TemporalBlend; 0 = off). stats_side: long side of the small copy the statistics are recorded on.
    tile: the engine's tile size for frames (default: its own). cuts: the scene-cut detector (both restart at a cut).
    """

    def __init__(self, engine: Cartoonizer, strength: float = 1.0, smoothing: float | None = DEFAULT_SMOOTHING,
                 blend: float = DEFAULT_BLEND, stats_side: int = STATS_SIDE, tile: int | None = None,
                 cuts: CutDetector | None = None):
        self.engine = engine
        self.strength = float(strength)
        self.smoother = None if smoothing is None else StatsSmoother(smoothing)
        self.blend = TemporalBlend(blend) if blend else None
        self.stats_side = int(stats_side)
        self.tile = tile
        self.detector = cuts or CutDetector()
        self.cuts: list[int] = []  # indices (frames seen so far) that started a shot
        self.frames = 0

    def __call__(self, frames: Sequence[np.ndarray], times: Sequence[float]) -> list[np.ndarray]:
        """(H, W, 3) uint8 frames and their times in seconds -> their cartoons, (H, W, 3) uint8."""
        if not frames:
            return []
        cut = [self.detector(f) for f in frames]
        self.cuts += [self.frames + i for i, c in enumerate(cut) if c]
        self.frames += len(frames)
        stats = None  # each frame's own statistics
        if self.smoother is not None:
            own = self.engine.statistics(frames, self.stats_side)
            stats = [self.smoother(s, float(t), c) for s, t, c in zip(own, times, cut)]
        out = []
        for f, (c, _), is_cut in zip(frames, self.engine.stylize(frames, stats, tile=self.tile), cut):
            if self.blend is not None:
                c = self.blend(f, c, is_cut)
            out.append(apply_strength(f, c, self.strength))
        return out
