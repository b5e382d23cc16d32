"""The process supervisor, the stop order and the connection state, without subprocesses:
children are stand-ins that record what is done to them."""

import asyncio
import logging
import os
import queue
import time

import pytest

from streamguard import lifecycle
from streamguard.observability import metrics
from streamguard.runtime import supervisor
from streamguard.runtime.supervisor import ProcessReport, ProcessSupervisor


class FakeChild:
    """A worker process that is alive until killed, terminated or told to exit."""

    def __init__(self, number: int, journal: list[str], *, obeys_sigterm: bool = True) -> None:
        self.name = f"worker-{number}"
        self.pid = 1000 + len(journal)
        self.exitcode: int | None = None
        self._journal = journal
        self._obeys_sigterm = obeys_sigterm
        journal.append(f"start {number}")

    def is_alive(self) -> bool:
        return self.exitcode is None

    def exit(self, code: int) -> None:
        self.exitcode = code

    def terminate(self) -> None:
        self._journal.append(f"terminate {self.name}")
        if self._obeys_sigterm:
            self.exitcode = -15

    def kill(self) -> None:
        self._journal.append(f"kill {self.name}")
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        pass


class Scene:
    def __init__(self, count: int = 2, timeout_s: float = 30.0, **child) -> None:
        self.journal: list[str] = []
        self.children: list[FakeChild] = []
        self.reports: queue.Queue[ProcessReport] = queue.Queue()
        self.busy: set[int] = set()  # processes using CPU: theirs grows at each look
        self._cpu: dict[int, int] = {}

        def spawn(number: int) -> FakeChild:
            self.children.append(FakeChild(number, self.journal, **child))
            return self.children[-1]

        self.supervisor = ProcessSupervisor(count, spawn, self.reports, timeout_s, self.cpu_used)

    def cpu_used(self, pid: int) -> int:
        number = next(int(c.name[7:]) for c in self.children if c.pid == pid)
        self._cpu[pid] = self._cpu.get(pid, 0) + (number in self.busy)
        return self._cpu[pid]

    def report(self, number: int, *, ready: bool = True) -> None:
        streams = [{"id": f"cam-{number}"}]
        self.reports.put(ProcessReport(number, streams, ready, {"loaded": ready}))


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(supervisor, "REPORT_WAIT_S", 0.01)


def supervise(scene: Scene, during) -> None:
    """Run the supervisor while ``during(stop)`` acts on the scene, then stop it."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(scene.supervisor.run(stop))
        await asyncio.sleep(0.05)
        await during()
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


async def settle() -> None:
    await asyncio.sleep(0.1)


def test_starts_every_process_and_gathers_their_reports():
    scene = Scene(count=2)
    seen = {}

    async def during() -> None:
        scene.report(1)
        scene.report(0, ready=False)
        await settle()
        seen["not ready"] = scene.supervisor.ready()
        scene.report(0)
        await settle()
        seen["ready"] = scene.supervisor.ready()
        seen["streams"] = scene.supervisor.streams()

    supervise(scene, during)
    assert scene.journal[:2] == ["start 0", "start 1"]
    assert seen["not ready"] == (False, [{"loaded": False}, {"loaded": True}])
    assert seen["ready"] == (True, [{"loaded": True}, {"loaded": True}])
    assert seen["streams"] == [{"id": "cam-0"}, {"id": "cam-1"}]  # in process order


def test_a_process_that_exits_is_started_again_and_counted(caplog):
    scene = Scene(count=2)

    async def during() -> None:
        scene.report(0)
        scene.report(1)
        await settle()
        scene.children[1].exit(-9)
        await settle()

    supervise(scene, during)
    assert scene.journal[:3] == ["start 0", "start 1", "start 1"]
    assert "worker process 1 exited (code -9); restarting" in caplog.text


def test_a_silent_process_is_killed_and_started_again(caplog):
    scene = Scene(count=2, timeout_s=0.2)
    scene.busy = {0, 1}  # starting: using CPU, so not timed by the clock yet
    seen = {}

    async def during() -> None:
        await asyncio.sleep(0.4)
        seen["starting"] = list(scene.journal)
        scene.report(0)
        scene.report(1)
        for _ in range(6):  # process 0 goes on reporting, process 1 falls silent
            await asyncio.sleep(0.1)
            scene.report(0)
        seen["ready"] = scene.supervisor.ready()[0]

    supervise(scene, during)
    assert seen["starting"] == ["start 0", "start 1"]
    assert scene.journal[2:4] == ["kill worker-1", "start 1"]
    assert seen["ready"] is False  # the new process has not reported yet
    assert "worker process 1 sent no state for" in caplog.text
    assert "kill worker-0" not in scene.journal


def test_a_process_that_hangs_before_its_first_report_is_killed_and_started_again(caplog):
    scene = Scene(count=2, timeout_s=0.2)
    scene.busy = {0}  # process 1 uses no CPU: stopped, or blocked at its start
    restarts = metrics.WORKER_RESTARTS.labels("hung_at_start")
    before = restarts._value.get()

    async def during() -> None:
        await asyncio.sleep(0.45)

    supervise(scene, during)
    assert scene.journal[:4] == ["start 0", "start 1", "kill worker-1", "start 1"]
    assert "kill worker-0" not in scene.journal  # busy starting: not hung
    assert "worker process 1 sent no state in the" in caplog.text
    assert "since it started, and used no CPU for" in caplog.text
    assert restarts._value.get() >= before + 1


def test_a_start_that_keeps_using_cpu_is_given_up_after_its_limit(monkeypatch, caplog):
    monkeypatch.setattr(supervisor, "START_LIMIT_TIMEOUTS", 3)
    scene = Scene(count=1, timeout_s=0.1)
    scene.busy = {0}
    seen = {}

    async def during() -> None:
        await asyncio.sleep(0.2)  # past timeout_s, within 3 of them
        seen["early"] = list(scene.journal)
        await asyncio.sleep(0.25)

    supervise(scene, during)
    assert seen["early"] == ["start 0"]
    assert scene.journal[1:3] == ["kill worker-0", "start 0"]
    assert "(hung at its start)" in caplog.text and "used no CPU" not in caplog.text


def test_cpu_ticks_reads_this_process_and_none_for_one_gone():
    spent = supervisor.cpu_ticks(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert spent is not None and supervisor.cpu_ticks(os.getpid()) > spent
    assert supervisor.cpu_ticks(2**22 + 1) is None  # above pid_max's limit: never a process


def test_stop_terminates_every_process_and_kills_those_that_overrun(monkeypatch, caplog):
    monkeypatch.setattr(supervisor, "CHILD_STOP_TIMEOUT_S", 0.05)
    scene = Scene(count=2, obeys_sigterm=False)

    async def during() -> None:
        pass

    supervise(scene, during)
    assert scene.journal[2:] == [
        "terminate worker-0",
        "terminate worker-1",
        "kill worker-0",
        "kill worker-1",
    ]
    assert "did not stop in time; killed" in caplog.text


class RecordingService:
    def __init__(self, name: str, journal: list[str], *, stops: bool = True) -> None:
        self.name, self._journal, self._stops = name, journal, stops
        self._stop = asyncio.Event()

    async def run(self) -> None:
        try:
            while not (self._stops and self._stop.is_set()):
                await asyncio.sleep(0.01)
        finally:
            self._journal.append(f"{self.name} returned")

    def stop(self) -> None:
        self._journal.append(f"stop {self.name}")
        self._stop.set()

    def status(self) -> dict[str, bool]:
        return {}


def test_services_stop_one_after_another_and_one_that_overruns_is_cancelled(caplog):
    journal: list[str] = []

    async def main() -> None:
        services = [
            lifecycle.start("sync", RecordingService("sync", journal), 1.0),
            lifecycle.start("stuck", RecordingService("stuck", journal, stops=False), 0.05),
            lifecycle.start("sink", RecordingService("sink", journal), 1.0),
        ]
        await asyncio.sleep(0.02)
        await lifecycle.stop_in_order(services)
        assert all(running.task.done() for running in services)

    asyncio.run(main())
    assert journal == [
        "stop sync",
        "sync returned",
        "stop stuck",
        "stuck returned",  # cancelled after its 0.05 s
        "stop sink",
        "sink returned",
    ]
    assert "stuck did not stop in 0 s; cancelled" in caplog.text


def test_a_link_logs_a_failure_once_and_its_return(caplog):
    caplog.set_level(logging.DEBUG)
    link = lifecycle.Link(logging.getLogger("test.link"))
    link.down("refused", "service unavailable (%s)", "refused")
    link.down("refused", "service unavailable (%s)", "refused")
    link.down("timeout", "service unavailable (%s)", "timeout")
    assert link.failures == 3 and not link.connected and link.last_error == "timeout"
    link.up("service is back")
    link.up("service is back")
    assert link.connected and link.failures == 0 and link.last_error == ""
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("ERROR", "service unavailable (refused)"),
        ("DEBUG", "service unavailable (refused)"),
        ("ERROR", "service unavailable (timeout)"),
        ("INFO", "service is back"),
    ]


def test_a_link_backs_off_longer_after_each_failure_and_wakes_on_stop():
    link = lifecycle.Link(logging.getLogger("test.link"), retry_initial_s=10, retry_max_s=10)
    link.down("x", "down")

    async def main() -> float:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, stop.set)
        started = loop.time()
        await link.retry_after_backoff(stop)
        return loop.time() - started

    assert asyncio.run(main()) < 1  # not the 5-10 s back-off
