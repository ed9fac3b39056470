"""Redis with Sentinel on loopback for the tests: a master, replicas and sentinels, each in a folder of its own.

What production runs for high availability: Debian's `redis-server`
and `redis-sentinel`, on free 127.0.0.1 ports, persistent (AOF), with a password. Sentinels notice a
dead master after `down_after_ms` and promote a replica; `kill_master()` is the crash.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from app.cli.demo.stack import Process, free_port, port_open, require_binary, wait_until

MASTER_NAME = "sluice"


def _sentinel_command() -> list[str]:
    """Debian's `redis-sentinel` (package redis-sentinel), else `redis-server --sentinel` (same binary)."""
    if shutil.which("redis-sentinel"):
        return [str(shutil.which("redis-sentinel"))]
    return [require_binary("redis-server", "redis-sentinel"), "--sentinel"]


@dataclass
class SentinelStack:
    workdir: Path
    replicas: int = 1
    sentinels: int = 3
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    password: str = ""
    sentinel_password: str = ""  # the sentinels' own `requirepass` (and what they use between themselves)
    servers: list[tuple[Process, int]] = field(default_factory=list)  # master first, as started
    sentinel_procs: list[tuple[Process, int]] = field(default_factory=list)

    def _server(self, name: str, replica_of: int | None) -> tuple[Process, int]:
        binary = require_binary("redis-server", "redis-server")
        port = free_port()
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
        args += ["--appendonly", "yes", "--save", ""]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        proc = Process(name, args, folder).start()
        wait_until(lambda: port_open(port), 15, name, proc.proc, proc.log)
        return proc, port

    def _sentinel(self, index: int, master_port: int) -> tuple[Process, int]:
        port = free_port()
        folder = self.workdir / f"sentinel-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # sentinels rewrite their file: one writable copy each
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        conf.write_text("\n".join(lines) + "\n")
        proc = Process(f"sentinel-{index}", [*_sentinel_command(), str(conf)], folder).start()
        wait_until(lambda: port_open(port), 15, f"sentinel-{index}", proc.proc, proc.log)
        return proc, port

    def start(self) -> SentinelStack:
        master = self._server("redis-master", None)
        self.servers.append(master)
        for i in range(self.replicas):
            self.servers.append(self._server(f"redis-replica-{i}", master[1]))
        for i in range(self.sentinels):
            self.sentinel_procs.append(self._sentinel(i, master[1]))
        self.wait_until_settled()
        return self

    def url(self, db: int = 0, with_password: bool = True) -> str:
        auth = f":{self.password}@" if self.password and with_password else ""
        hosts = ",".join(f"127.0.0.1:{port}" for _, port in self.sentinel_procs)
        return f"redis+sentinel://{auth}{hosts}/{MASTER_NAME}/{db}"

    def _ask(self, port: int, *command: str) -> object:
        client = redis.Redis(
            "127.0.0.1",
            port,
            password=self.sentinel_password or None,
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
        )
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def master_port(self) -> int | None:
        """The master's port as the sentinels agree on it (a majority of them), or None."""
        votes: dict[int, int] = {}
        for _, port in self.sentinel_procs:
            try:
                answer = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except redis.RedisError:
                continue
            if isinstance(answer, list) and len(answer) == 2:
                votes[int(answer[1])] = votes.get(int(answer[1]), 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] > len(self.sentinel_procs) // 2 else None

    def wait_until_settled(self, timeout: float = 30.0) -> None:
        """Until every sentinel knows the others and a replica (so a failover can happen), and each
        replica has finished its first sync."""

        def settled() -> bool:
            for _, port in self.sentinel_procs:
                state = self._ask(port, "SENTINEL", "MASTER", MASTER_NAME)
                # redis-py parses SENTINEL MASTER into a dict; a raw flat list is read as one too
                fields = state if isinstance(state, dict) else dict(zip(state[::2], state[1::2], strict=False))  # type: ignore[index]
                if int(fields.get("num-other-sentinels", 0)) < len(self.sentinel_procs) - 1:
                    return False
                if int(fields.get("num-slaves", 0)) < self.replicas:
                    return False
            return self._replicas_online()

        wait_until(settled, timeout, "sentinels to discover each other and the replicas")

    def _replicas_online(self) -> bool:
        """The master lists every replica as `state=online` (its first sync done, streaming writes)."""
        port = self.master_port()
        if port is None:
            return False
        client = redis.Redis("127.0.0.1", port, password=self.password or None, socket_timeout=1)
        try:
            info = client.info("replication")
        finally:
            client.close()
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return len([r for r in online if r.get("state") == "online"]) >= self.replicas

    def _sentinels_see_replica(self, port: int, synced: float) -> bool:
        """Every sentinel read the replica's INFO after `synced` (monotonic) and saw its link up."""
        for _, sentinel in self.sentinel_procs:
            replicas = cast(list[Any], self._ask(sentinel, "SENTINEL", "REPLICAS", MASTER_NAME))
            entries = [r if isinstance(r, dict) else dict(zip(r[::2], r[1::2], strict=False)) for r in replicas]
            mine = [r for r in entries if int(r.get("port", 0)) == port]
            if not mine or "down" in str(mine[0].get("flags", "")) or mine[0].get("master-link-status") != "ok":
                return False
            # info-refresh: milliseconds since this sentinel last read the replica's INFO
            if int(mine[0].get("info-refresh", 10**9)) / 1000 >= time.monotonic() - synced:
                return False
        return True

    def process_on(self, port: int) -> Process:
        return next(proc for proc, p in self.servers if p == port)

    def kill_master(self) -> int:
        """SIGKILL the current master (as a crash would); returns its port."""
        port = self.master_port()
        assert port is not None, "the sentinels agree on no master"
        self.process_on(port).kill()
        return port

    def restart(self, port: int) -> None:
        """Start a killed server again on its port, with its data; the sentinels make it a replica of
        the current master (as when a crashed master's host comes back)."""
        proc = self.process_on(port).start()
        wait_until(lambda: port_open(port), 15, proc.name, proc.proc, proc.log)
        self.wait_until_settled()
        # Online at the master is not enough: a failover within a second of a full sync lost the writes
        # made during it (seen in tests/e2e/test_sentinel_failover.py). Wait until every sentinel has
        # read the replica's INFO since and sees its link to the master up, as it would in production
        # long after a restart.
        synced = time.monotonic()
        wait_until(lambda: self._sentinels_see_replica(port, synced), 30, f"sentinels to see {proc.name} in sync")

    def wait_for_new_master(self, old_port: int, timeout: float = 30.0) -> int:
        """Until the sentinels name another master and it accepts writes; returns its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                client = redis.Redis("127.0.0.1", port, password=self.password or None, socket_timeout=1)
                try:
                    role = client.execute_command("ROLE")
                    if role and role[0] in (b"master", "master"):
                        return port
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            time.sleep(0.1)
        raise RuntimeError(f"no replica was promoted within {timeout:.0f}s of the master on port {old_port} dying")

    def describe(self) -> str:
        """Who the sentinels name and what each server says it is: for a failing test's message."""
        lines = []
        for _, port in self.sentinel_procs:
            try:
                lines.append(f"sentinel {port}: {self._ask(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)}")
            except redis.RedisError as exc:
                lines.append(f"sentinel {port}: {type(exc).__name__}")
        for proc, port in self.servers:
            client = redis.Redis("127.0.0.1", port, password=self.password or None, socket_timeout=1)
            try:
                role = client.execute_command("ROLE")
                lines.append(f"{proc.name} {port}: {role[0]!r}, {client.dbsize()} keys")
            except redis.RedisError as exc:
                lines.append(f"{proc.name} {port}: {type(exc).__name__}")
            finally:
                client.close()
        return "\n".join(lines)

    def stop(self) -> None:
        for proc, _ in reversed(self.sentinel_procs):
            proc.stop()
        for proc, _ in reversed(self.servers):
            proc.stop()
