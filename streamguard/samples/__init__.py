"""The bundled stand-in media (samples/README.md at the repository's top describes them,
and samples/make_samples.py makes them): synthetic, benign pictures and clips and the
blocklist of the "flagged" ones.

They are package data, found through the package rather than the checkout, because
``streamguard demo``, ``eval --quick`` and ``eval --adversarial`` need them wherever
streamguard is installed. pip installs a wheel unpacked, so they are plain files.
"""

from importlib.resources import files
from pathlib import Path

SAMPLES_DIR = Path(str(files(__name__)))
