"""The disk of the outbox fills up: decided kills can no longer be written to it. They
must not be lost: they wait in memory, go out while the broker is there, and the outbox
takes events again once space is freed."""

import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
WRITE_ERRORS = "streamguard_outbox_write_errors_total"


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the state directory (needs root, as in CI)."""
    directory = tmp_path / "state"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a small tmpfs for the outbox-disk fault ({mounted.stderr.strip()}): "
            "this test needs root (CAP_SYS_ADMIN), as CI has",
            pytrace=False,
        )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def restart_worker_1(scene: Scene, record) -> None:
    """Kill worker process 1 (flagged-b's) while the disk is full: it must start again
    once, and watch again, not crash-loop (its metrics files are written through a
    memory map: on the full disk, a first write to one raised SIGBUS)."""
    restarts = 'streamguard_worker_restarts_total{reason="exited"}'
    (victim,) = {e["worker_id"] for e in scene.delivered_for("flagged-b")}
    killed = time.time()
    os.kill(int(victim.rpartition("/")[2]), signal.SIGKILL)
    scene.service.wait_for(lambda: scene.metric(restarts) == 1, 20, "worker 1 restarted")
    scene.service.wait_for(
        lambda: (
            scene.streams()["flagged-b"]["connects"] == 1
            and scene.streams()["flagged-b"]["state"] == "watching"
            and scene.streams()["flagged-b"]["frames_sampled"] > 0
        ),
        30,
        "worker 1 started again and watching flagged-b, on the full disk",
    )
    record.saw(
        f"worker process 1 killed on the full disk: started again, flagged-b watched "
        f"{time.time() - killed:.1f} s later"
    )
    time.sleep(3)  # a crash loop would restart it again within this
    assert scene.metric(restarts) == 1, scene.service.log()
    record.saw(f"`{restarts}` +1 only, `/metrics` answered throughout")


@pytest.mark.parametrize("processes", [1, 2])
def test_outbox_disk_full(redis, mosquitto, nginx, tmp_path, small_disk, record, processes):
    record.fault = "the outbox's disk full (1 MiB tmpfs filled) for a flagged frame, then freed"
    if processes > 1:
        record.fault += ", under `run --processes 2`, with a worker process killed meanwhile"
    with Scene(
        tmp_path, redis, mosquitto, nginx, processes=processes, state_dir=small_disk
    ) as scene:
        flagged = scene.flagged
        undisturbed = [*flagged, "clean"] if processes == 1 else ["flagged-a", "clean"]
        scene.before_flagged(1.5)
        before, decided = scene.streams(), len(scene.decisions())
        filled = time.time()
        filler = fill(small_disk)
        if processes > 1:
            restart_worker_1(scene, record)
        detected_s = scene.wait_detected_after(filled, flagged, 2 * LOOP_S + 5)
        record.detection_kept = True
        errors = scene.metric(WRITE_ERRORS)
        assert errors >= len(flagged), errors
        assert len(scene.decisions()) >= decided + len(flagged)
        record.saw(
            f"kills for frames shown {detected_s:.1f} s after the disk filled could not be "
            f"written (`{WRITE_ERRORS}` +{errors:.0f}): kept in memory and delivered"
        )
        filler.unlink()
        freed = time.time()
        scene.wait_detected_after(freed, flagged, LOOP_S + 5)
        assert "writable again" in scene.service.log()
        record.saw("space freed: the next kills went through the outbox again")
        assert scene.metric(WRITE_ERRORS) == errors
        problems = scene.disturbed(undisturbed, before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert not problems, problems
    log = scene.service.log()
    assert "database or disk is full" in log
    record.saw("log: `outbox PATH: cannot store event ID for TOPIC (database or disk is full); …`")
    assert scene.exit_code == 0
