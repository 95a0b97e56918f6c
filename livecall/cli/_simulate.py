"""``livecall simulate``: a provider's live-call WebSocket, simulated on this machine."""

import argparse
import shlex
from typing import Any

from ..config import Config
from ..errors import ConfigurationError
from ._numbers import pace_seconds
from ._signals import signals

__all__ = ["add_parser", "load_simulator"]

PROVIDERS = ("hiya", "phonic")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="serve a simulated provider on this machine, to watch without credentials",
        description="Serve a simulated Hiya or Phonic live-call WebSocket on 127.0.0.1. "
        "It plays one scripted call and exits once the call has ended and its watchers have "
        "disconnected; a scenario that refuses credentials (auth, auth-close) runs until Ctrl-C.",
    )
    parser.add_argument("provider", nargs="?", choices=PROVIDERS, help="default: hiya")
    parser.add_argument("--port", type=_port, default=0, help="default: a free port")
    parser.add_argument("--scenario", metavar="NAME", help="default: the provider's normal call (see --list)")
    parser.add_argument(
        "--pace",
        metavar="S",
        type=pace_seconds,
        default=1.0,
        help="seconds between scripted messages (default: %(default)s)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the scenarios and exit (from Python, the Simulator class takes options that tune them)",
    )
    parser.set_defaults(func=simulate_command)


def load_simulator() -> Any:
    """The ``Simulator`` class; its server library is an optional extra."""
    try:
        from ..testing import Simulator
    except ImportError:
        raise ConfigurationError(
            "the simulator needs the websockets package (livecall's testing extra): "
            "pip install 'websockets>=12'"
        ) from None
    return Simulator


def simulate_command(config: Config) -> None:
    options, out = config.options, config.stdout
    if options.list:
        from ..testing import scenarios

        for info in scenarios(options.provider):  # info.options are the Simulator's, not the CLI's
            out.write(f"{info.provider:<7} {info.name:<13} {info.summary}\n")
        return
    Simulator = load_simulator()
    provider = options.provider or PROVIDERS[0]
    try:
        simulator = Simulator(provider, options.scenario, port=options.port, pace=options.pace)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    with simulator:
        until = "exits once it has ended" if simulator.ends_call else "never ends; Ctrl-C stops it"
        join = ["--join"] if simulator.awaits_join else []  # else the call waits for a join that never comes
        out.write(
            f"Simulating {provider} ({simulator.scenario}) at {simulator.url}: one call, {until}.\n"
            f"Watch it with:\n  livecall {shlex.join(simulator.watch_args(*join))}\n"
        )
        out.flush()
        with signals.stopping(simulator.stop):
            if simulator.ends_call:
                simulator.wait_for_call_over()
            else:
                simulator.serve_forever()


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, not {text!r}")
    return port
