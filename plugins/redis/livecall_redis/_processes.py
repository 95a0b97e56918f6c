"""``--processes N``: N worker processes, each its own consumer, started and stopped together."""

import logging
import multiprocessing
import signal
import threading
from typing import Any, Optional

from ._stats import Stats, serve_metrics
from ._worker import Worker, WorkerSettings

__all__ = ["run_processes", "run_worker"]

log = logging.getLogger("livecall.redis")


def run_worker(
    settings: WorkerSettings, plugin_manager: Any, metrics_port: Optional[int], stop: threading.Event
) -> None:
    """One worker in this process, with its metrics endpoint if asked, until ``stop``."""
    stats = Stats()
    stop_serving = serve_metrics(stats, metrics_port) if metrics_port else None
    try:
        Worker(settings, plugin_manager, stats).run(stop)
    finally:
        if stop_serving is not None:
            stop_serving()


def _child(settings: WorkerSettings, metrics_port: Optional[int], log_level: int) -> None:
    """A child process: a fresh interpreter, its own plugins, SIGTERM stops it gracefully."""
    import livecall
    from livecall.plugins import create_plugin_manager

    handler = logging.StreamHandler()
    handler.addFilter(livecall.RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    logging.basicConfig(level=log_level, handlers=[handler])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    run_worker(settings, create_plugin_manager(), metrics_port, stop)


def run_processes(settings: WorkerSettings, processes: int, metrics_port: Optional[int]) -> int:
    """Start ``processes`` workers and wait for them; stopping this one stops them all.

    Each child serves its metrics on ``metrics_port`` plus its index.
    Returns how many children failed.
    """
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    children = [
        context.Process(
            target=_child,
            args=(settings, metrics_port + index if metrics_port else None, level),
            name=f"livecall-worker-{index}",
        )
        for index in range(processes)
    ]
    for child in children:
        child.start()
    try:
        for child in children:
            child.join()
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the child gives its calls back
        for child in children:
            child.join()
    return sum(1 for child in children if child.exitcode not in (0, -signal.SIGTERM))
