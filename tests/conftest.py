from pathlib import Path

import pytest

from streamguard.samples import SAMPLES_DIR as SAMPLES


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
