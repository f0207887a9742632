"""The whole platform on one machine: the embedded stack plus worker processes.

``start_platform`` brings up the broker and Milvus (``ops.stack``), then ONE
store worker (the only process that opens the chdb directory), N pipeline
workers and (``publish.enabled``) M publish workers, each a ``codereview
worker`` process with its own web port, and
records them in ``<state_dir>/workers.json`` so ``codereview down`` from
another shell stops them all. Workers get the parent's settings through their
environment (``settings_env``), so every process runs the same configuration.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from codereview.settings import Settings, settings_env
from ops.processes import ManagedProcess, StackError, free_port
from ops.stack import EmbeddedStack, load_stack_info

WORKERS_FILE = "workers.json"
# A worker answers HTTP in ~3 s; joining the group and recovering tables takes longer.
WORKER_READY_S = 60.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    role: str
    pid: int
    start_time: float
    web_port: int
    log_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def process(self) -> ManagedProcess:
        return ManagedProcess.attach(self.name, self.pid, Path(self.log_path), self.start_time)


def start_platform(settings: Settings, *, workers: int = 2, publishers: int = 1) -> dict[str, Any]:
    """Start the stack and the workers; on any failure stop what was started."""
    state_dir = Path(settings.stack.state_dir).resolve()
    stack = EmbeddedStack()
    info = stack.up(settings)
    started: list[WorkerInfo] = []
    try:
        store_port = settings.stack.store_web_port or free_port()
        started.append(start_worker(settings, "store", "store", store_port))
        for i in range(workers):
            started.append(start_worker(settings, f"pipeline-{i + 1}", "pipeline", free_port()))
        for i in range(publishers if settings.publish.enabled else 0):
            started.append(start_worker(settings, f"publish-{i + 1}", "publish", free_port()))
        _write_workers(state_dir, started)
        for worker in started:
            worker.process().wait_ready(partial(worker_healthy, worker.url), WORKER_READY_S)
    except BaseException:
        for worker in started:
            worker.process().stop()
        (state_dir / WORKERS_FILE).unlink(missing_ok=True)
        stack.down(state_dir)
        raise
    return {
        "state_dir": str(state_dir),
        "kafka": info.kafka_bootstrap,
        "milvus": info.milvus_uri,
        "store": started[0].url,
        "pipeline": ", ".join(w.url for w in started if w.role == "pipeline"),
        "publish": ", ".join(w.url for w in started if w.role == "publish"),
    }


def start_worker(settings: Settings, name: str, role: str, web_port: int) -> WorkerInfo:
    state_dir = Path(settings.stack.state_dir).resolve()
    argv = [
        sys.executable,
        "-m",
        "codereview.cli",
        "worker",
        "--role",
        role,
        "--web-port",
        str(web_port),
        "--instance",
        name,
    ]
    proc = ManagedProcess(
        name, argv, state_dir / "logs" / f"{name}.log", env=settings_env(settings)
    )
    proc.start()
    assert proc.pid is not None
    return WorkerInfo(name, role, proc.pid, proc.start_time or 0.0, web_port, str(proc.log_path))


def restart_worker(settings: Settings, name: str, *, kill: bool = False) -> WorkerInfo:
    """Stop one worker (SIGKILL with ``kill``: a crash) and start it again on its port."""
    state_dir = Path(settings.stack.state_dir).resolve()
    workers = load_workers(state_dir)
    old = next((w for w in workers if w.name == name), None)
    if old is None:
        raise StackError(f"no worker named {name!r} in {state_dir / WORKERS_FILE}")
    if kill:
        old.process().kill()
    else:
        old.process().stop(timeout_s=20)
    new = start_worker(settings, old.name, old.role, old.web_port)
    _write_workers(state_dir, [new if w.name == name else w for w in workers])
    new.process().wait_ready(partial(worker_healthy, new.url), WORKER_READY_S)
    return new


def stop_platform(settings: Settings) -> None:
    """Stop the workers first (they flush and commit), then the stack. Idempotent."""
    state_dir = Path(settings.stack.state_dir).resolve()
    for worker in load_workers(state_dir):
        worker.process().stop(timeout_s=20)
    (state_dir / WORKERS_FILE).unlink(missing_ok=True)
    EmbeddedStack().down(state_dir)


def platform_status(settings: Settings) -> dict[str, Any]:
    state_dir = Path(settings.stack.state_dir).resolve()
    stack = EmbeddedStack().status(state_dir)
    workers = {
        w.name: {
            "role": w.role,
            "url": w.url,
            "alive": w.process().alive(),
            "healthy": worker_healthy(w.url),
        }
        for w in load_workers(state_dir)
    }
    healthy = bool(stack.get("running")) and all(w["healthy"] for w in workers.values())
    return {"healthy": healthy, "stack": stack, "workers": workers}


def load_workers(state_dir: Path) -> list[WorkerInfo]:
    path = Path(state_dir) / WORKERS_FILE
    if not path.exists():
        return []
    return [WorkerInfo(**w) for w in json.loads(path.read_text())]


def store_url(settings: Settings) -> str:
    """The store worker's base URL, where queries against chdb are routed."""
    state_dir = Path(settings.stack.state_dir).resolve()
    for worker in load_workers(state_dir):
        if worker.role == "store":
            return worker.url
    if settings.stack.store_web_port:
        return f"http://127.0.0.1:{settings.stack.store_web_port}"
    if load_stack_info(state_dir) is None:
        raise StackError("the embedded stack is not running: run `codereview up`")
    raise StackError(f"no store worker is recorded in {state_dir / WORKERS_FILE}")


def worker_healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _write_workers(state_dir: Path, workers: list[WorkerInfo]) -> None:
    path = state_dir / WORKERS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(w) for w in workers], indent=2))
    tmp.replace(path)


def wait_until(check: Any, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``check()`` until truthy or the timeout; returns the last answer's truth."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return bool(check())
