"""What ``streamguard eval`` compares: the probes (one algorithm, one way of looking, one
kind of entry), the matching methods built of them, and the recall targets of issue 8."""

from collections.abc import Iterable
from dataclasses import dataclass

from streamguard.config.model import Robustness
from streamguard.detect.matcher import PLAIN, ROBUST

ALGOS = ("pdq", "phash", "dhash")
PDQ_PHASH = ("pdq", "phash")


@dataclass(frozen=True, slots=True)
class Probe:
    """One algorithm, looked at plainly or with streamguard's steps (bars removed, PDQ's
    eight orientations), against hash-only entries or entries made from the images."""

    algo: str
    robust: bool
    variants: bool

    @property
    def key(self) -> str:
        view = "robust" if self.robust else "plain"
        return f"{self.algo}/{view}/{'images' if self.variants else 'hashes'}"


PROBES = tuple(Probe(a, r, v) for a in ALGOS for r in (False, True) for v in (False, True))


@dataclass(frozen=True, slots=True)
class Method:
    """A matching set-up: a frame matches if any of its probes is within threshold."""

    name: str
    label: str
    probes: tuple[Probe, ...]

    @property
    def robustness(self) -> Robustness:
        return ROBUST if self.probes[0].robust else PLAIN

    @property
    def variants(self) -> bool:
        return self.probes[0].variants


def _method(name: str, label: str, algos: Iterable[str], robust: bool, variants: bool) -> Method:
    return Method(name, label, tuple(Probe(a, robust, variants) for a in algos))


METHODS = (
    _method("plain-pdq", "plain PDQ", ["pdq"], False, False),
    _method("plain-phash", "plain pHash", ["phash"], False, False),
    _method("sg-pdq", "streamguard PDQ, hash-only entries", ["pdq"], True, False),
    _method("sg-pdq-phash", "streamguard PDQ+pHash, hash-only entries", PDQ_PHASH, True, False),
    _method("sg-pdq-img", "streamguard PDQ, entries from images", ["pdq"], True, True),
    _method(
        "sg-pdq-phash-img", "streamguard PDQ+pHash, entries from images", PDQ_PHASH, True, True
    ),
    _method("sg-all-img", "streamguard PDQ+pHash+dHash, entries from images", ALGOS, True, True),
)
BY_METHOD = {method.name: method for method in METHODS}


@dataclass(frozen=True, slots=True)
class Target:
    """Recall the issue asks for, per transform of ``groups``, at the configured thresholds.
    Checked for the method the issue names and for the same with pHash entries added."""

    label: str
    groups: frozenset[str]
    methods: tuple[str, ...]
    recall: float


TARGETS = (
    Target(
        "re-encode, scale, brightness/contrast/gamma, letterbox/pillarbox/padding",
        frozenset({"reencode", "scale", "photometric", "bars"}),
        ("sg-pdq", "sg-pdq-phash"),
        0.99,
    ),
    Target(
        "horizontal flip, 90° rotation",
        frozenset({"flip", "rot90"}),
        ("sg-pdq", "sg-pdq-phash"),
        0.95,
    ),
    Target(
        "5% crops, text/caption/logo overlays",
        frozenset({"crop5", "overlay"}),
        ("sg-pdq-img", "sg-pdq-phash-img"),
        0.90,
    ),
)
