"""The demo's stack (real HAProxy, Prometheus, gunicorn, Sluice) with load running, for module
fixtures: `yield from running(stack)` gives (stack, load) and stops both afterwards."""

from __future__ import annotations

from collections.abc import Iterator

from app.cli.demo.run import DemoStack, LoadGenerator


def running(stack: DemoStack, rate: float = 40) -> Iterator[tuple[DemoStack, LoadGenerator]]:
    """Start the stack and a load generator at `rate` req/s, wait until Prometheus scraped every
    version, yield both; stop them however the tests ended."""
    load = None
    try:
        stack.start(say=lambda _m: None)
        load = LoadGenerator(stack.frontend_url, rate=rate).start()
        stack.wait_for_scrapes()
        yield stack, load
    finally:
        if load:
            load.stop()
        stack.stop()
