"""The fake API server's watch: a chunked stream of ADDED / MODIFIED / DELETED events, BOOKMARKs
when the client allows them, ERROR 410 Gone for a resourceVersion older than the store's last
`compact()`, and the end of the stream after timeoutSeconds. A `drop_watches()` cuts the connection
mid-stream without the final chunk (as a restarting API server or an idle-timeout proxy does)."""

from __future__ import annotations

import copy
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.kube_errors import ApiError
from tests.support.kube_patch import matches
from tests.support.kube_store import RESOURCES, KubeStore, api_version


def _start(store: KubeStore, group: str, plural: str, ns: str, query: dict[str, str]) -> tuple[list[Any], int, bool]:
    """The events to send first, the resourceVersion to follow from, and whether the stream ends
    right after them (410 Gone). The caller holds the store's lock."""
    start = query.get("resourceVersion")
    selector = query.get("labelSelector")
    pending: list[dict[str, Any]] = []
    if start in (None, "", "0"):
        for (g, p, n, _), o in store.objects.items():
            if (g, p, n) == (group, plural, ns) and matches(selector, o["metadata"].get("labels") or {}):
                pending.append({"type": "ADDED", "object": copy.deepcopy(o)})
        return pending, store.rv, False
    if int(start or 0) < store.compacted:
        gone = ApiError(410, "Expired", f"too old resource version: {start} ({store.compacted})")
        return [{"type": "ERROR", "object": gone.status()}], store.rv, True
    return pending, int(start or 0), False


def serve_watch(
    store: KubeStore,
    handler: BaseHTTPRequestHandler,
    group: str,
    plural: str,
    ns: str,
    query: dict[str, str],
    generation: int,
) -> None:
    selector = query.get("labelSelector")
    timeout = float(query.get("timeoutSeconds") or 30)
    bookmarks = str(query.get("allowWatchBookmarks")).lower() in ("true", "1")
    kind = RESOURCES[(group, plural)][1]
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def send(event: dict[str, Any]) -> None:
        line = (json.dumps(event) + "\n").encode()
        handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        handler.wfile.flush()

    deadline = time.monotonic() + timeout
    try:
        with store._cond:
            pending, cursor, gone = _start(store, group, plural, ns, query)
        deadline = 0.0 if gone else deadline
        for event in pending:
            send(event)
        last_bookmark = time.monotonic()
        while time.monotonic() < deadline:
            with store._cond:
                if store._stopping:
                    break
                if store._watch_generation != generation:  # drop_watches: cut, no final chunk
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                fresh = [e for e in store.events if e[0] > cursor and e[1][:3] == (group, plural, ns)]
                if not fresh:
                    store._cond.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
                    fresh = [e for e in store.events if e[0] > cursor and e[1][:3] == (group, plural, ns)]
                cursor = current_rv = store.rv  # every event up to here is in `fresh` (or not ours)
            for _, _, etype, obj in fresh:
                if matches(selector, obj["metadata"].get("labels") or {}):
                    send({"type": etype, "object": obj})
            if bookmarks and time.monotonic() - last_bookmark >= store.bookmark_interval:
                meta = {"resourceVersion": str(current_rv)}
                send(
                    {
                        "type": "BOOKMARK",
                        "object": {"kind": kind, "apiVersion": api_version(group, plural), "metadata": meta},
                    }
                )
                last_bookmark = time.monotonic()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
