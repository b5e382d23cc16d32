from pathlib import Path

import pytest

from streamguard.samples import SAMPLES_DIR as SAMPLES


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist (``-n 2 --dist loadgroup``, as ``make test`` runs the suite) each
    module runs whole in one worker, so its module-scoped servers start once; the fault
    suite runs whole in one worker, which writes its record of every fault."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = "faults" if module.startswith("tests/faults/") else module
        item.add_marker(pytest.mark.xdist_group(group))
