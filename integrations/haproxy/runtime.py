"""A small client for HAProxy's runtime API (the admin `stats socket`).

One command per connection: HAProxy's non-interactive mode answers and closes, so there is
no session state to get wrong. Every name that reaches a command is checked first, because
the CLI treats `;` and newlines as command separators and a stray one would run a second
command with admin rights.
"""

from __future__ import annotations

import csv
import re
import socket
from typing import TypedDict

from tenacity import RetryError, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from integrations.routers.interface import RouterError

NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,63}$")
MAX_WEIGHT = 256
_ATTEMPTS = 3
# Answers HAProxy gives to a command it could not apply (set/get weight, show servers state).
_NO_BACKEND = ("No such backend", "No such proxy", "Can't find backend")
_NO_SERVER = ("No such server",)


class ServerInfo(TypedDict):
    weight: int  # the weight set by configuration or `set weight` (HAProxy's "uweight")
    status: str  # UP, UP 1/3, DOWN, DOWN 1/2, NOLB, MAINT, DRAIN, no check, ...
    addr: str  # host:port


def check_name(value: str, what: str) -> str:
    """Return `value` if it is safe to put in a command; raise a non-retryable RouterError otherwise."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise RouterError(
            f"HAProxy {what} name {value!r} is not allowed: use 1-63 letters, digits, '_', '.', ':' or '-'",
            retryable=False,
        )
    return value


def parse_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """`/run/haproxy.sock`, `unix@/run/haproxy.sock`, `127.0.0.1:9999` or `[::1]:9999` -> (family, addr)."""
    addr = address.strip()
    if addr.startswith("unix@"):
        return socket.AF_UNIX, addr.removeprefix("unix@")
    for prefix in ("ipv4@", "ipv6@", "tcp@"):
        addr = addr.removeprefix(prefix)
    host, sep, port = addr.rpartition(":")
    if sep and port.isdigit() and host and "/" not in addr:
        if host.startswith("[") and host.endswith("]"):
            return socket.AF_INET6, (host[1:-1], int(port))
        return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))
    return socket.AF_UNIX, addr


class RuntimeClient:
    """HAProxy's runtime API at `address` (a unix socket path or host:port); `timeout` per call."""

    def __init__(self, address: str, timeout: float = 2.0):
        self.address = address
        self.timeout = timeout
        self._family, self._addr = parse_address(address)

    # --- transport --------------------------------------------------------------------------------

    def run(self, command: str) -> str:
        """Send one command and return HAProxy's whole answer. Connection problems are retried
        briefly (HAProxy reloading drops the socket for a moment), then raised as retryable."""
        if not command or any(c in command for c in "\n\r;\0"):
            raise RouterError(f"refusing to send {command!r}: one command, no ';' or newlines", False)
        try:
            return self._run_with_retry(command)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise RouterError(
                f"cannot reach the HAProxy runtime API at {self.address} ({cause}): check that haproxy "
                f"is running and its config has `stats socket {self.address} level admin`",
                retryable=True,
            ) from cause

    @retry(
        retry=retry_if_exception_type(OSError),
        stop=stop_after_attempt(_ATTEMPTS),
        wait=wait_exponential(multiplier=0.1, max=1.0),
    )
    def _run_with_retry(self, command: str) -> str:
        return self._send(command)

    def _send(self, command: str) -> str:
        with socket.socket(self._family, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self._addr)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    # --- commands ---------------------------------------------------------------------------------

    def backends(self) -> list[str]:
        lines = self.run("show backend").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def servers(self, backend: str) -> dict[str, ServerInfo]:
        """The backend's servers, in configuration order, from `show stat` (servers only)."""
        check_name(backend, "backend")
        answer = self.run(f"show stat {backend} 4 -1")
        _raise_for_answer(answer, backend, None)
        lines = [line for line in answer.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("# "):
            raise RouterError(f"unexpected answer to `show stat` from HAProxy: {answer[:200]!r}")
        result: dict[str, ServerInfo] = {}
        for row in csv.DictReader([lines[0][2:], *lines[1:]]):
            if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            weight = row.get("uweight") or row.get("weight") or "0"
            result[row["svname"]] = ServerInfo(
                weight=int(weight), status=row.get("status", ""), addr=row.get("addr", "")
            )
        if not result:
            if backend not in self.backends():
                raise _no_backend(backend)
            raise RouterError(
                f"HAProxy backend {backend!r} has no servers: add `server <version> host:port` per version",
                retryable=False,
            )
        return result

    def get_weight(self, backend: str, server: str) -> int:
        check_name(backend, "backend")
        check_name(server, "server")
        answer = self.run(f"get weight {backend}/{server}")
        _raise_for_answer(answer, backend, server)
        first = answer.split(maxsplit=1)[0] if answer.strip() else ""
        if not first.isdigit():
            raise RouterError(f"unexpected answer to `get weight {backend}/{server}`: {answer.strip()!r}")
        return int(first)

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        check_name(backend, "backend")
        check_name(server, "server")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
            raise RouterError(f"HAProxy weight {weight!r} is out of range: use an integer 0..256", False)
        answer = self.run(f"set weight {backend}/{server} {weight}")
        _raise_for_answer(answer, backend, server)
        if answer.strip():
            raise RouterError(
                f"HAProxy refused `set weight {backend}/{server} {weight}`: {answer.strip()}",
                retryable=False,
            )

    # --- maps (segments: integrations/haproxy/segments.py) ------------------------------------------

    def show_map(self, path: str) -> list[tuple[str, str]]:
        """The map's (key, value) entries, in order. A value (a server name) has no spaces; a key may."""
        answer = self._map_command(f"show map {check_map_path(path)}", path)
        entries = []
        for line in answer.splitlines():
            _, _, rest = line.strip().partition(" ")  # drop the entry's address
            key, _, value = rest.rpartition(" ")
            if key:
                entries.append((key, value))
        return entries

    def add_map(self, path: str, key: str, value: str) -> None:
        self._map_write(f"add map {check_map_path(path)} {cli_escape(key)} {check_name(value, 'server')}", path)

    def set_map(self, path: str, key: str, value: str) -> None:
        self._map_write(f"set map {check_map_path(path)} {cli_escape(key)} {check_name(value, 'server')}", path)

    def del_map(self, path: str, key: str) -> None:
        self._map_write(f"del map {check_map_path(path)} {cli_escape(key)}", path, missing_ok=True)

    def clear_map(self, path: str) -> None:
        self._map_write(f"clear map {check_map_path(path)}", path)

    def _map_command(self, command: str, path: str) -> str:
        answer = self.run(command)
        if answer.strip().startswith("Unknown map identifier"):
            raise RouterError(
                f"HAProxy has no map {path!r}: the map must be used by a rule in haproxy.cfg (see docs/shapes.md) "
                "and its file must exist when HAProxy starts",
                retryable=False,
            )
        _raise_for_answer(answer, "", None)
        return answer

    def _map_write(self, command: str, path: str, missing_ok: bool = False) -> None:
        answer = self._map_command(command, path).strip()
        if answer and not (missing_ok and answer.startswith("Key not found")):
            raise RouterError(f"HAProxy refused `{command}`: {answer}", retryable=False)


MAP_PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]{1,255}$")


def check_map_path(path: str) -> str:
    if not MAP_PATH_RE.match(path) or ".." in path.split("/"):
        raise RouterError(
            f"HAProxy map path {path!r} is not allowed: use an absolute path of letters, digits, '_', '.', '-', '/'",
            retryable=False,
        )
    return path


def cli_escape(word: str) -> str:
    """One word of a runtime API command: the CLI splits on spaces and reads '\\' as an escape, so
    both are escaped; a word with a control character or ';' is refused (it would end the command)."""
    if not word or any(ord(c) < 0x20 or c in ";\x7f" for c in word):
        raise RouterError(f"cannot send {word!r} to HAProxy: no control characters or ';'", retryable=False)
    return word.replace("\\", "\\\\").replace(" ", "\\ ")


def _no_backend(backend: str) -> RouterError:
    return RouterError(
        f"HAProxy has no backend named {backend!r}: add `backend {backend}` to haproxy.cfg, or set "
        "`backend:` on the service to the backend that serves it",
        retryable=False,
    )


def no_server(backend: str, server: str) -> RouterError:
    return RouterError(
        f"HAProxy backend {backend!r} has no server named {server!r}: add "
        f"`server {server} host:port weight 0` to the backend",
        retryable=False,
    )


def _raise_for_answer(answer: str, backend: str, server: str | None) -> None:
    """Turn HAProxy's error answers into RouterErrors that say what to fix."""
    text = answer.strip()
    if text.startswith(_NO_BACKEND):
        raise _no_backend(backend)
    if server is not None and text.startswith(_NO_SERVER):
        raise no_server(backend, server)
    if text.startswith(("Permission denied", "Unknown command")):
        raise RouterError(
            f"HAProxy refused the command ({text.splitlines()[0]}): the stats socket needs `level admin`",
            retryable=False,
        )
