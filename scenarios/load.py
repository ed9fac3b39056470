"""The scenario suite's load generator: one asyncio process sending every scenario's traffic.

Run as `python -m scenarios.load PLAN.json OUT.jsonl`. The plan lists, per scenario, the
HAProxy frontend port and the traffic pattern. Requests are open-loop (sent on schedule
whether or not earlier ones have answered, as real clients do) and evenly spaced, so a run is
reproducible. Each response is written to OUT as one JSON line:
[scenario, unix time, status, X-Version, X-Served-By, milliseconds]; status 0 means the
client got no HTTP answer (connection refused/reset, or no answer within 10 s).

It speaks minimal HTTP/1.1 over asyncio streams with keep-alive rather than using an HTTP
library: the whole suite sends several hundred requests a second from one process on a
shared two-core machine, and this costs a fraction of what a full client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

CLIENT_TIMEOUT = 10.0
MAX_CONNECTIONS = 64


@dataclass(frozen=True)
class Pattern:
    """Requests per second over time: `rate`, and `burst_rate` for `burst_s` every `burst_every_s`."""

    rate: float
    burst_rate: float = 0.0
    burst_every_s: float = 0.0
    burst_s: float = 0.0

    def rate_at(self, t: float) -> float:
        if self.burst_every_s and (t % self.burst_every_s) < self.burst_s:
            return self.burst_rate
        return self.rate

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pattern:
        return cls(**data)


class Client:
    def __init__(self, port: int):
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def get(self) -> tuple[int, str | None, str | None]:
        for attempt in range(2):
            reused = bool(self.idle)
            if reused:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.open += 1
            try:
                return await self._exchange(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self._close(writer)
                if reused and attempt == 0 and not getattr(exc, "partial", b""):
                    continue  # the proxy closed an idle keep-alive connection: retry once on a new one
                raise
            except BaseException:
                self._close(writer)
                raise
        raise ConnectionError("unreachable")

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, str | None, str | None]:
        writer.write(b"GET / HTTP/1.1\r\nHost: scenario\r\nUser-Agent: sluice-scenarios\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "-1"))
        if length >= 0:
            await reader.readexactly(length)
        else:
            await reader.read()
        if length >= 0 and headers.get("connection", "").lower() != "close" and len(self.idle) < MAX_CONNECTIONS:
            self.idle.append((reader, writer))
        else:
            self._close(writer)
        return status, headers.get("x-version"), headers.get("x-served-by")

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self.open -= 1
        with contextlib.suppress(Exception):  # closing a broken connection
            writer.close()


class Recorder:
    def __init__(self, path: str):
        self.out = open(path, "a", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        self.pending: list[str] = []

    def add(self, row: list[Any]) -> None:
        self.pending.append(json.dumps(row, separators=(",", ":")))
        if len(self.pending) >= 500:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write("\n".join(self.pending) + "\n")
            self.out.flush()
            self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.out.close()


async def one(client: Client, name: str, rec: Recorder) -> None:
    started = time.time()
    try:
        status, version, server = await asyncio.wait_for(client.get(), CLIENT_TIMEOUT)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        status, version, server = 0, None, None
    rec.add([name, round(started, 3), status, version, server, round((time.time() - started) * 1000, 1)])


async def drive(name: str, port: int, pattern: Pattern, rec: Recorder, stop: asyncio.Event, duration: float) -> None:
    client = Client(port)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    next_at = t0
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set() and next_at - t0 < duration:
        delay = next_at - loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except TimeoutError:
                pass
        task = asyncio.create_task(one(client, name, rec))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        rate = pattern.rate_at(next_at - t0)
        next_at += 1.0 / rate if rate > 0 else 1.0
    if tasks:
        await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT + 1)


async def main(plan_path: str, out_path: str) -> None:
    with open(plan_path) as f:
        plan = json.load(f)
    rec = Recorder(out_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def flusher() -> None:
        while not stop.is_set():
            await asyncio.sleep(1)
            rec.flush()

    flush_task = asyncio.create_task(flusher())
    try:
        await asyncio.gather(
            *(
                drive(s["name"], s["port"], Pattern.from_dict(s["pattern"]), rec, stop, plan.get("duration", 600))
                for s in plan["scenarios"]
            )
        )
    finally:
        stop.set()
        flush_task.cancel()
        rec.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
