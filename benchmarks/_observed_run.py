"""One throughput run in a process of its own: ``_observed_run.py SOURCE VARIANT URL``.

``SOURCE`` is the folder whose ``livecall/`` is imported (the code now, or
an earlier revision exported by ``observability.py``); ``VARIANT`` says
what is switched on.  Prints the figures as JSON.
"""

import json
import sys
import time
from typing import Any


def main(source: str, variant: str, url: str) -> dict[str, Any]:
    sys.path.insert(0, source)
    import livecall

    if variant == "metrics":
        from livecall import observability

        observability.serve(0)
    elif variant == "tracing":
        from opentelemetry.sdk.trace import TracerProvider

        from livecall import observability

        observability.enable_tracing(TracerProvider())

    class Counter:
        count = 0
        finished_at = 0.0

        @livecall.hookimpl
        def livecall_event(self, call: Any, event: Any) -> None:
            self.count += 1
            if type(event) is livecall.CallEnded:
                self.finished_at = time.perf_counter()

    counter = Counter()
    client = livecall.HiyaClient(
        token="bench-token",
        conversation_token="bench-conversation",
        user_id="bench",
        url=url,
        plugins=[counter],
    )
    started = time.perf_counter()
    client.run()
    return dict(messages=counter.count, seconds=counter.finished_at - started, livecall=livecall.__file__)


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
