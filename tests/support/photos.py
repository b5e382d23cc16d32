"""Picture files of every size and kind, made from the small real photographs in
tests/data/photos, for checking that pictures hash as the reference libraries hash them."""

from pathlib import Path

from PIL import Image

PHOTOS_DIR = Path(__file__).resolve().parents[1] / "data" / "photos"

SIZES = ((96, 64), (320, 240), (640, 480), (1920, 1080), (3595, 3723))
"""Width x height: small, the two common camera sizes that drifted 2 bits before, 1080p,
and the size that drifted 60 bits (issue 17)."""

KIND_SIZE = (640, 480)
"""The size of the pictures that differ in kind rather than size (grey, palette, alpha…)."""

EXIF_ORIENTATION = 0x0112
TURNED_A_QUARTER = 6  # "rotate 90 degrees clockwise to display"; neither reference does


def photos() -> list[Path]:
    return sorted(PHOTOS_DIR.glob("*.jpg"))


def derived_pictures(
    photo: Path, directory: Path, sizes: tuple[tuple[int, int], ...] = SIZES
) -> list[Path]:
    """Write ``photo`` resized to each of ``sizes`` as JPEG and PNG, and at KIND_SIZE as a
    grey JPEG, a palette PNG, a PNG with alpha, a grey PNG with alpha, a 16-bit grey PNG,
    a CMYK JPEG and a JPEG whose EXIF says to turn it; return their paths, ``photo`` first."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [photo]

    def write(image: Image.Image, name: str, **options: object) -> None:
        path = directory / f"{photo.stem}-{name}"
        image.save(path, **options)
        written.append(path)

    with Image.open(photo) as opened:
        rgb = opened.convert("RGB")
    for width, height in sizes:
        resized = rgb.resize((width, height), Image.Resampling.LANCZOS)
        write(resized, f"{width}x{height}.jpg", quality=90)
        write(resized, f"{width}x{height}.png", compress_level=1)
    kind = rgb.resize(KIND_SIZE, Image.Resampling.LANCZOS)
    alpha = Image.linear_gradient("L").resize(KIND_SIZE)
    write(kind.convert("L"), "grey.jpg", quality=90)
    write(kind.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "palette.png")
    write(Image.merge("RGBA", (*kind.split(), alpha)), "alpha.png")
    write(Image.merge("LA", (kind.convert("L"), alpha)), "grey-alpha.png")
    write(kind.convert("L").convert("I;16"), "grey16.png")
    write(kind.convert("CMYK"), "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = TURNED_A_QUARTER
    write(kind, "exif-turned.jpg", quality=90, exif=exif)
    return written
