"""``--processes N``: N worker processes, each its own consumer, started and stopped together."""

import logging
import multiprocessing
import signal
import sys
import threading
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional

from ._settings import WorkerSettings, redis_place
from ._stats import Stats, serve_metrics
from ._worker import Worker

__all__ = ["run_processes", "run_worker"]

log = logging.getLogger("livecall.redis")


def run_worker(
    settings: WorkerSettings, plugin_manager: Any, metrics_port: Optional[int], stop: threading.Event
) -> None:
    """One worker in this process, with its metrics endpoint if asked, until ``stop``.

    It says on stderr when it starts and when it stops, at any verbosity: a
    worker otherwise prints nothing until a call goes wrong, and whoever
    starts one must see that it runs, as whom, and where it takes calls from.
    """
    stats = Stats()
    stop_serving = serve_metrics(stats, metrics_port) if metrics_port else None
    worker = Worker(settings, plugin_manager, stats)
    _say(
        f"worker {worker.consumer} takes up to {settings.calls} calls from {settings.requests} "
        f"on {redis_place(settings.redis_url)} (group {settings.group}); Ctrl-C or SIGTERM stops it"
    )
    try:
        worker.run(stop)
    finally:
        if stop_serving is not None:
            stop_serving()
        _say(f"worker {worker.consumer} stopped")


def _say(line: str) -> None:
    print(f"livecall: {line}", file=sys.stderr, flush=True)


#: The signals that stop a worker process, and the one its worker thread sends once it is done.
_STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})
_WORKER_DONE = signal.SIGUSR1


def _child(settings: WorkerSettings, metrics_port: Optional[int], log_level: int) -> None:
    """A child process: a fresh interpreter, its own plugins, SIGTERM stops it gracefully.

    The worker runs on a thread of its own, and the main thread takes the
    stopping signals with ``sigwait``, blocked in every thread, rather than in
    a handler: a handler runs wherever the main thread is, maybe inside
    ``stop.wait()`` holding the event's lock, where ``stop.set()`` would wait
    on itself; and one that comes as the main thread starts to sleep is not
    run until it wakes.
    """
    import livecall
    from livecall.plugins import create_plugin_manager

    handler = logging.StreamHandler()
    handler.addFilter(livecall.RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    logging.basicConfig(level=log_level, handlers=[handler])
    stop = threading.Event()
    failed: list[BaseException] = []
    main_thread = threading.get_ident()

    def work() -> None:
        try:
            run_worker(settings, create_plugin_manager(), metrics_port, stop)
        except BaseException as error:
            failed.append(error)
        finally:
            signal.pthread_kill(main_thread, _WORKER_DONE)

    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING | {_WORKER_DONE})  # threads started after inherit it
    worker = threading.Thread(target=work, name="livecall-worker")
    worker.start()
    if signal.sigwait(_STOPPING | {_WORKER_DONE}) != _WORKER_DONE:
        stop.set()
    worker.join()
    if failed:
        raise failed[0]


def run_processes(
    settings: WorkerSettings,
    processes: int,
    metrics_port: Optional[int],
    stopping: Callable[[Callable[[], None]], AbstractContextManager[None]],
) -> int:
    """Start ``processes`` workers and wait for them; stopping this one stops them all.

    Each child serves its metrics on ``metrics_port`` plus its index.
    ``stopping`` is the command's ``Config.stopping``: a signal terminates the
    children (SIGTERM: each gives its calls back) from another thread.
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
        with stopping(lambda: _terminate(children)):
            for child in children:
                child.join()
    finally:
        _terminate(children)
        for child in children:
            child.join()
    return sum(1 for child in children if child.exitcode not in (0, -signal.SIGTERM))


def _terminate(children: list[Any]) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child gives its calls back
