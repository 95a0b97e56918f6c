"""``--processes N``: N worker processes, each its own consumer, started and stopped together."""

import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional

import attrs

from livecall import observability

from ._capacity import said
from ._settings import WorkerSettings, redis_place
from ._shards import requests_shown
from ._stats import Stats
from ._worker import Worker

__all__ = ["DEFAULT_METRICS_HOST", "Serving", "run_processes", "run_worker"]

log = logging.getLogger("livecall.redis")

#: Loopback: metrics and probes are for this machine unless the operator says otherwise.
DEFAULT_METRICS_HOST = "127.0.0.1"


@attrs.frozen
class Serving:
    """Where a worker process serves ``/metrics``, ``/healthz`` and ``/readyz`` (``--metrics-port``).

    ``port`` 0 picks a free one; ``stale_after`` is the silence after which
    an open connection makes ``/healthz`` fail.
    """

    port: int
    host: str = DEFAULT_METRICS_HOST
    stale_after: float = observability.DEFAULT_STALE_AFTER

    def child(self, index: int) -> "Serving":
        """Where the ``index``-th of ``--processes N`` serves: ``port + index`` (any free port for 0)."""
        return attrs.evolve(self, port=self.port + index) if self.port else self


def run_worker(
    settings: WorkerSettings,
    plugin_manager: Any,
    serving: Optional[Serving],
    stop: threading.Event,
    hurry: Optional[threading.Event] = None,
) -> None:
    """One worker in this process, serving its metrics and probes if asked, until ``stop``; then
    it drains its calls (``--drain``), at once once ``hurry`` is set.

    The worker's figures join livecall's on the endpoint (a metrics source
    while it runs); ``/readyz`` says whether it takes calls now, and
    ``/healthz`` fails once the hub has not turned for ``--hub-stall``
    seconds, when the worker lets its leases lapse.

    It says on stderr when it starts and when it stops, at any verbosity: a
    worker otherwise prints nothing until a call goes wrong, and whoever
    starts one must see that it runs, as whom, and where it takes calls from.
    """
    stats = Stats()
    worker = Worker(settings, plugin_manager, stats)
    endpoint = None
    if serving is not None:
        endpoint = observability.serve(
            serving.port,
            serving.host,
            ready=worker.ready,
            stale_after=serving.stale_after,
            hub_stall=settings.hub_stall,
        )
    observability.add_metrics_source(stats.families)
    _say(
        f"worker {worker.consumer} takes up to {worker.capacity} calls from {requests_shown(settings)} "
        f"on {redis_place(settings.redis_url)} (group {settings.group}"
        f"{said(settings.calls, worker.descriptors)}); Ctrl-C or SIGTERM stops it"
    )
    if endpoint is not None:
        _say(f"worker {worker.consumer} serves /metrics, /healthz and /readyz on {endpoint.url}")
    try:
        worker.run(stop, hurry)
    finally:
        observability.remove_metrics_source(stats.families)
        if endpoint is not None:
            endpoint.close()
        _say(f"worker {worker.consumer} stopped")


def _say(line: str) -> None:
    print(f"livecall: {line}", file=sys.stderr, flush=True)


#: The signals that stop a worker process, and the one its worker thread sends once it is done.
_STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})
_WORKER_DONE = signal.SIGUSR1


def _child(settings: WorkerSettings, serving: Optional[Serving], log_level: int) -> None:
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
    stop, hurry = threading.Event(), threading.Event()
    failed: list[BaseException] = []
    main_thread = threading.get_ident()

    def work() -> None:
        try:
            run_worker(settings, create_plugin_manager(), serving, stop, hurry)
        except BaseException as error:
            failed.append(error)
        finally:
            signal.pthread_kill(main_thread, _WORKER_DONE)

    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING | {_WORKER_DONE})  # threads started after inherit it
    worker = threading.Thread(target=work, name="livecall-worker")
    worker.start()
    if signal.sigwait(_STOPPING | {_WORKER_DONE}) != _WORKER_DONE:
        stop.set()  # the worker drains its calls; a second signal ends the drain at once
        if signal.sigwait(_STOPPING | {_WORKER_DONE}) != _WORKER_DONE:
            hurry.set()
    worker.join()
    if failed:
        raise failed[0]


def run_processes(
    settings: WorkerSettings,
    processes: int,
    serving: Optional[Serving],
    stopping: Callable[[Callable[[], None]], AbstractContextManager[None]],
    again: Optional[Callable[[Callable[[], None]], AbstractContextManager[None]]] = None,
) -> int:
    """Start ``processes`` workers and wait for them; stopping this one stops them all.

    Each child serves its metrics and probes on ``serving.port`` plus its index.
    ``stopping`` is the command's ``Config.stopping``: a signal terminates the
    children (SIGTERM: each drains its calls) from another thread; ``again``
    does the same for the second signal (a second SIGTERM: each ends its
    drain at once).  Returns how many children failed.
    """
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    children = [
        context.Process(
            target=_child,
            args=(settings, None if serving is None else serving.child(index), level),
            name=f"livecall-worker-{index}",
        )
        for index in range(processes)
    ]
    for child in children:
        child.start()
    try:
        with stopping(lambda: _terminate(children)), (again or _unsaid)(lambda: _signal(children)):
            for child in children:
                child.join()
    finally:
        _terminate(children)
        for child in children:
            child.join()
    return sum(1 for child in children if child.exitcode not in (0, -signal.SIGTERM))


def _unsaid(action: Callable[[], None]) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


def _signal(children: list[Any]) -> None:
    """SIGTERM to every child not known to be over, from a signal handler: nothing waited on."""
    for child in children:
        child.terminate()


def _terminate(children: list[Any]) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child gives its calls back
