"""Which pictures ``streamguard eval`` runs on: the directories asked for, else
scikit-image's bundled samples, else the project's samples and generated pictures; and
which of them can be entries at all."""

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from streamguard.errors import StreamguardError
from streamguard.evaluation import corpus
from streamguard.evaluation.corpus import Picture
from streamguard.evaluation.options import Options
from streamguard.hashing.picture import hash_picture, load_picture
from streamguard.samples import SAMPLES_DIR


def choose_pictures(options: Options) -> tuple[list[Picture], str]:
    corpus_dir = options.output / "corpus"
    negatives = (
        corpus.directory_pictures(options.negatives, entry=False) if options.negatives else []
    )
    if options.images:
        return [*corpus.directory_pictures(options.images, entry=True), *negatives], str(
            options.images
        )
    if not options.quick:
        found = corpus.skimage_pictures(corpus_dir / "skimage")
        if found is not None:
            return [*found, *negatives], "scikit-image bundled sample images"
        options.log("eval: scikit-image is not installed; using the project's sample images")
    flagged = corpus.directory_pictures(SAMPLES_DIR / "flagged", entry=True)
    controls = corpus.directory_pictures(SAMPLES_DIR / "images", entry=False)
    generated = corpus.generated_pictures(corpus_dir / "generated", 2 if options.quick else 8)
    return [
        *flagged,
        *controls,
        *generated,
        *negatives,
    ], "project samples (flagged, images) and generated pictures"


def check_pictures(pictures: list[Picture], log: Callable[[str], None]) -> list[Picture]:
    """Entries need a PDQ hash of quality >= 50, as ``blocklist add-image`` does."""
    kept: list[Picture] = []
    seen: Counter[str] = Counter()
    for picture in pictures:
        seen[picture.name] += 1
        if seen[picture.name] > 1:  # the same stem twice (a.png, a.jpg): names must differ
            picture = replace(picture, name=f"{picture.name}.{seen[picture.name]}")
        (pdq,) = hash_picture(load_picture(picture.path), ["pdq"])
        if picture.entry and not pdq.matchable:
            log(f"eval: {picture.name}: PDQ quality {pdq.quality} < 50, left out")
            continue
        kept.append(picture)
    if not any(p.entry for p in kept):
        raise StreamguardError("eval: no usable positive pictures")
    return kept
