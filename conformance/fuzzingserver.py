"""Run the ported Autobahn|Testsuite fuzzing server on 127.0.0.1 only.

Usage: python fuzzingserver.py SPEC.json [--port PORT]
(with the ported package on PYTHONPATH; see setup.sh).  Ctrl-C or a client
opening /updateReports?agent=X&shutdownOnComplete=true stops it.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from twisted.internet import reactor  # noqa: E402
from autobahn.twisted.websocket import listenWS  # noqa: E402

from autobahntestsuite.fuzzing import FuzzingServerFactory  # noqa: E402


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    if "--port" in sys.argv:
        spec["url"] = f"ws://127.0.0.1:{int(sys.argv[sys.argv.index('--port') + 1])}"
    factory = FuzzingServerFactory(spec)
    listenWS(factory, interface="127.0.0.1")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
