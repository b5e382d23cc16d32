"""What re-uploaders and streamers do to a picture, for the detection-quality evaluation.

Each transform turns an RGB picture (H x W x 3, uint8) into the RGB frame a stream
would show; ``streamguard eval`` then encodes that frame with H.264 and reads it back
through the production sampler (docs/detection-quality.md). Everything is
deterministic: the only randomness comes from the generator passed in, which the
evaluation seeds per picture and transform.
"""

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

FRAME_HEIGHT = 720
"""Frames keep the picture's aspect at this height unless a transform says otherwise."""
MAX_WIDTH = 1920

Render = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True, slots=True)
class Transform:
    name: str
    group: str  # transforms with one recall target share a group (methods.TARGETS)
    description: str
    render: Render
    bitrate: str = "std"  # a key of observation.BITRATES


def even(value: float) -> int:
    """The nearest even whole number, at least 2 (4:2:0 video needs even sides)."""
    return max(2, round(value / 2) * 2)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging down, bicubic up (what encoders' scalers roughly do)."""
    if (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    shrinking = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(
        rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    )


def native_size(shape: tuple[int, ...], height: int = FRAME_HEIGHT) -> tuple[int, int]:
    """(width, height) of a frame ``height`` high with the picture's aspect, even sides."""
    aspect = shape[1] / shape[0]
    width = even(height * aspect)
    if width > MAX_WIDTH:
        width, height = MAX_WIDTH, round(MAX_WIDTH / aspect)
    return width, even(height)


def at_height(rgb: np.ndarray, height: int = FRAME_HEIGHT) -> np.ndarray:
    return resize(rgb, *native_size(rgb.shape, height))


def place(
    picture: np.ndarray,
    width: int,
    height: int,
    x: int,
    y: int,
    colour: tuple[int, ...] = (0, 0, 0),
) -> np.ndarray:
    """``picture`` on a ``width`` x ``height`` canvas of ``colour``, top-left at (x, y)."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = colour
    canvas[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return canvas


def fit(
    rgb: np.ndarray, width: int, height: int, colour: tuple[int, ...] = (0, 0, 0)
) -> np.ndarray:
    """The picture scaled to fit ``width`` x ``height``, centred, bars where it does not fill."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    w, h = min(width, even(rgb.shape[1] * scale)), min(height, even(rgb.shape[0] * scale))
    return place(resize(rgb, w, h), width, height, (width - w) // 2, (height - h) // 2, colour)


def crop(rgb: np.ndarray, top: float, bottom: float, left: float, right: float) -> np.ndarray:
    """Remove these fractions of the height (top, bottom) and width (left, right)."""
    height, width = rgb.shape[:2]
    return rgb[
        round(height * top) : height - round(height * bottom),
        round(width * left) : width - round(width * right),
    ]


def _clip(values: np.ndarray) -> np.ndarray:
    clipped: np.ndarray = np.clip(np.rint(values), 0, 255)
    return clipped.astype(np.uint8)


# -- the transforms --------------------------------------------------------------------------


def _letterbox(rgb: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
    """Black bars above and below: the picture fills the width and 75% of the height."""
    picture = at_height(rgb, round(FRAME_HEIGHT * 0.75))
    width, height = picture.shape[1], FRAME_HEIGHT
    return place(picture, width, height, 0, (height - picture.shape[0]) // 2)


def _pillarbox(rgb: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
    """Black bars left and right: the picture fills the height and 75% of the width."""
    picture = at_height(rgb)
    width = even(picture.shape[1] / 0.75)
    return place(picture, width, picture.shape[0], (width - picture.shape[1]) // 2, 0)


def _pad(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A solid border of 20% of the picture's size on every side, in a random colour."""
    picture = at_height(rgb, round(FRAME_HEIGHT / 1.4))
    h, w = picture.shape[:2]
    top, left = even(0.2 * h), even(0.2 * w)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    return place(picture, w + 2 * left, h + 2 * top, left, top, colour)


SIDES = ("top", "bottom", "left", "right")


def _crop_centre(fraction: float) -> Render:
    def render(rgb: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
        half = fraction / 2
        return at_height(crop(rgb, half, half, half, half))

    return render


def _crop_side(fraction: float) -> Render:
    def render(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = SIDES[int(rng.integers(4))]
        cut = {name: fraction if name == side else 0.0 for name in SIDES}
        return at_height(crop(rgb, **cut))

    return render


def _crop_corner(fraction: float) -> Render:
    def render(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        vertical, horizontal = (
            ("top", "bottom")[rng.integers(2)],
            ("left", "right")[rng.integers(2)],
        )
        cut = {name: fraction if name in (vertical, horizontal) else 0.0 for name in SIDES}
        return at_height(crop(rgb, **cut))

    return render


def _brightness(delta: int) -> Render:
    return lambda rgb, _rng: at_height(_clip(rgb.astype(np.float32) + delta))


def _contrast(factor: float) -> Render:
    return lambda rgb, _rng: at_height(_clip((rgb.astype(np.float32) - 128) * factor + 128))


def _gamma(gamma: float) -> Render:
    table = _clip(255 * (np.arange(256) / 255) ** gamma)
    return lambda rgb, _rng: at_height(cv2.LUT(rgb, table))


def _text_lines(rng: np.random.Generator) -> list[str]:
    handle = f"@channel_{int(rng.integers(1000, 10000))}"
    return [("LIVE NOW", "WATCH THIS", "BREAKING")[rng.integers(3)], f"follow {handle}"]


def draw_text(frame: np.ndarray, lines: list[str], centre_y: int, line_height: int) -> None:
    """White text with a black outline, centred on ``centre_y``, in place."""
    font = cv2.FONT_HERSHEY_DUPLEX
    scale = line_height / 30  # Hershey duplex: ~30 px per line at scale 1
    thickness = max(1, round(scale * 1.6))
    top = centre_y - line_height * len(lines) // 2
    for i, line in enumerate(lines):
        (w, h), _ = cv2.getTextSize(line, font, scale, thickness)
        origin = ((frame.shape[1] - w) // 2, top + i * line_height + h)
        cv2.putText(frame, line, origin, font, scale, (0, 0, 0), thickness + 4, cv2.LINE_AA)
        cv2.putText(frame, line, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _text(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two lines of large outlined text across the picture (upper, middle or lower third)."""
    frame = at_height(rgb).copy()
    height = frame.shape[0]
    third = int(rng.integers(3))
    draw_text(frame, _text_lines(rng), height * (2 * third + 1) // 6, height // 11)
    return frame


def _caption(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark caption bar (80% opaque) over the bottom 15% of the picture, with text."""
    frame = at_height(rgb).copy()
    height = frame.shape[0]
    bar = frame[height - round(0.15 * height) :]
    bar[:] = _clip(bar.astype(np.float32) * 0.2)
    draw_text(frame, [" ".join(_text_lines(rng))], height - bar.shape[0] // 2, bar.shape[0] // 2)
    return frame


def logo_mark(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A channel logo: a coloured disc with a ring and initials. (RGB, alpha in 0..1)."""
    rgb = np.zeros((size, size, 3), np.uint8)
    alpha = np.zeros((size, size), np.float32)
    centre, radius = (size // 2, size // 2), size // 2 - 2
    colour = tuple(int(c) for c in rng.integers(40, 256, 3))
    cv2.circle(rgb, centre, radius, colour, -1, cv2.LINE_AA)
    cv2.circle(rgb, centre, radius, (255, 255, 255), max(2, size // 24), cv2.LINE_AA)
    cv2.circle(alpha, centre, radius, 1.0, -1, cv2.LINE_AA)
    letters = "".join(chr(int(c)) for c in rng.integers(65, 91, 2))
    scale = size / 60
    (w, h), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, size // 20))
    origin = ((size - w) // 2, (size + h) // 2)
    cv2.putText(
        rgb, letters, origin, cv2.FONT_HERSHEY_DUPLEX, scale, (255, 255, 255), max(1, size // 20)
    )
    return rgb, alpha


def _logo(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 60%-opaque logo, 20% of the frame's width, in a random corner."""
    frame = at_height(rgb).copy()
    height, width = frame.shape[:2]
    size = max(16, round(0.2 * min(width, 1.6 * height)))
    mark, alpha = logo_mark(size, rng)
    alpha = (alpha * 0.6)[:, :, None]
    margin = round(0.03 * height)
    corner = int(rng.integers(4))
    x = margin if corner % 2 == 0 else width - size - margin
    y = margin if corner < 2 else height - size - margin
    region = frame[y : y + size, x : x + size].astype(np.float32)
    frame[y : y + size, x : x + size] = _clip(region * (1 - alpha) + mark * alpha)
    return frame


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A benign backdrop: smooth colour clouds with finer detail (value noise)."""
    total = np.zeros((height, width, 3), np.float32)
    amplitude = 1.0
    for cells in (3, 7, 17, 41):
        grid = rng.random((max(2, cells * height // width), cells, 3), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.5
    total -= total.min()
    return _clip(total / total.max() * 220 + 20)


def _pip(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Picture-in-picture: the picture fitted into half the frame's width and height, in a
    random corner of a 1280x720 frame of benign background."""
    width, height = 1280, FRAME_HEIGHT
    frame = background(width, height, rng)
    scale = min(width / 2 / rgb.shape[1], height / 2 / rgb.shape[0])
    picture = resize(rgb, even(rgb.shape[1] * scale), even(rgb.shape[0] * scale))
    h, w = picture.shape[:2]
    margin = 24
    corner = int(rng.integers(4))
    x = margin if corner % 2 == 0 else width - w - margin
    y = margin if corner < 2 else height - h - margin
    frame[y : y + h, x : x + w] = picture
    return frame


def _rotate(degrees: float) -> Render:
    """Turned about the centre by ``degrees`` (anticlockwise), same frame, black corners."""

    def render(rgb: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
        frame = at_height(rgb)
        height, width = frame.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR)

    return render


def _scaled(height: int) -> Render:
    return lambda rgb, _rng: at_height(rgb, height)


TRANSFORMS: tuple[Transform, ...] = (
    Transform("reencode-4M", "reencode", "720p, 4 Mb/s", _scaled(720), "high"),
    Transform("reencode-400k", "reencode", "720p, 400 kb/s", _scaled(720), "low"),
    Transform("scale-360p", "scale", "360 px high", _scaled(360)),
    Transform("scale-480p", "scale", "480 px high", _scaled(480)),
    Transform("scale-720p", "scale", "720 px high", _scaled(720)),
    Transform("scale-1080p", "scale", "1080 px high", _scaled(1080)),
    Transform("stretch-4:3", "aspect", "stretched to 960x720", lambda r, _: resize(r, 960, 720)),
    Transform("stretch-16:9", "aspect", "stretched to 1280x720", lambda r, _: resize(r, 1280, 720)),
    Transform("letterbox", "bars", "black bars above and below, 12.5% each", _letterbox),
    Transform("pillarbox", "bars", "black bars left and right, 12.5% each", _pillarbox),
    Transform(
        "fit-16:9", "bars", "fitted into 1280x720 with black bars", lambda r, _: fit(r, 1280, 720)
    ),
    Transform("pad-20%", "bars", "solid-colour border, 20% of the picture per side", _pad),
    Transform("crop-5%-centre", "crop5", "2.5% off each side", _crop_centre(0.05)),
    Transform("crop-5%-side", "crop5", "5% off one random side", _crop_side(0.05)),
    Transform("crop-5%-corner", "crop5", "5% off two adjacent sides", _crop_corner(0.05)),
    Transform("crop-10%-centre", "crop10", "5% off each side", _crop_centre(0.10)),
    Transform("crop-10%-side", "crop10", "10% off one random side", _crop_side(0.10)),
    Transform("bright+40", "photometric", "brightness +40 levels", _brightness(40)),
    Transform("bright-40", "photometric", "brightness -40 levels", _brightness(-40)),
    Transform("contrast-0.6", "photometric", "contrast x0.6 about mid-grey", _contrast(0.6)),
    Transform("contrast-1.5", "photometric", "contrast x1.5 about mid-grey", _contrast(1.5)),
    Transform("gamma-0.6", "photometric", "gamma 0.6 (lighter)", _gamma(0.6)),
    Transform("gamma-1.6", "photometric", "gamma 1.6 (darker)", _gamma(1.6)),
    Transform("flip", "flip", "mirrored left-right", lambda r, _: at_height(r[:, ::-1])),
    Transform(
        "rot90", "rot90", "turned 90 degrees clockwise", lambda r, _: at_height(np.rot90(r, -1))
    ),
    Transform("text", "overlay", "two lines of large outlined text", _text),
    Transform("caption", "overlay", "80%-opaque caption bar over the bottom 15%", _caption),
    Transform("logo", "overlay", "60%-opaque logo in a corner, 20% of the width", _logo),
    Transform("pip-50%", "pip", "picture at half size in a corner of other content", _pip),
    Transform("rot-4deg", "rotate-small", "turned 4 degrees, black corners", _rotate(4.0)),
)

BY_NAME = {transform.name: transform for transform in TRANSFORMS}


def random_crop(rgb: np.ndarray, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random part (35-85% of the largest crop of the frame's aspect) of the picture,
    sometimes mirrored, scaled to ``width`` x ``height``: a negative that shares texture
    and colours with the picture it came from but is not a copy of it."""
    aspect = width / height
    h_max = min(rgb.shape[0], rgb.shape[1] / aspect)
    h = max(8, round(h_max * rng.uniform(0.35, 0.85)))
    w = max(8, round(h * aspect))
    y = int(rng.integers(0, rgb.shape[0] - h + 1))
    x = int(rng.integers(0, rgb.shape[1] - w + 1))
    part = rgb[y : y + h, x : x + w]
    if rng.random() < 0.5:
        part = part[:, ::-1]
    return resize(np.ascontiguousarray(part), width, height)
