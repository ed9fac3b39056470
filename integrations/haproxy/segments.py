"""Segments on HAProxy: requests whose header (or cookie) matches go to the candidate's server.

haproxy.cfg holds, per backend and header (or cookie), one rule reading a map (`SegmentMap.rule`,
shown here on two lines; it is one line in haproxy.cfg):

    use-server %[req.hdr(User-Agent),map_reg(/etc/haproxy/web-ua.map)]
        if { req.hdr(User-Agent),map_reg(/etc/haproxy/web-ua.map) -m found }

and Sluice fills the map through the runtime API (`add map` / `set map` / `del map`): the key is
the segment's regex, the value the candidate's server name. No reload: a change takes effect on
the next request. `use-server` picks the named server even at weight 0, so a segment step can
keep every other request on stable. The map file must exist (it may be empty) when HAProxy starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from app.core.config.base import Strict
from integrations.haproxy.runtime import MAP_PATH_RE, RuntimeClient, check_name
from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import SegmentConfig


class SegmentMap(Strict):
    """One `use-server ... map_reg(<map>)` rule of haproxy.cfg: which backend, which header or cookie."""

    backend: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,63}$", description="The service's HAProxy backend.")
    header: str | None = Field(None, description="The request header the rule reads (req.hdr(<header>)).")
    cookie: str | None = Field(None, description="The cookie the rule reads (req.cook(<cookie>)).")
    map: str = Field(pattern=MAP_PATH_RE.pattern, description="The map file's path, as written in haproxy.cfg.")

    @model_validator(mode="after")
    def _one_source(self) -> SegmentMap:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("a segment map reads exactly one of `header` or `cookie`")
        return self

    def serves(self, segment: SegmentConfig) -> bool:
        if segment.header is not None:
            return self.header is not None and self.header.lower() == segment.header.name.lower()
        return segment.cookie is not None and self.cookie == segment.cookie.name

    def rule(self) -> str:
        """The haproxy.cfg line this map needs."""
        fetch = f"req.hdr({self.header})" if self.header is not None else f"req.cook({self.cookie})"
        sample = f"{fetch},map_reg({self.map})"
        return f"use-server %[{sample}] if {{ {sample} -m found }}"


def backend_of(service: ServiceConfig) -> str:
    return service.backend or service.name


def check_step(router: Any, service: ServiceConfig, step: Any) -> str | None:
    """What haproxy.cfg and the router's `segment_maps` need for a segment step, if missing."""
    segment = step.segment
    if segment is None:
        return None
    backend = backend_of(service)
    if segment.header is not None and segment.header.regex is not None and ";" in segment.header.regex:
        return "HAProxy's runtime API cannot take a regex with ';' (it separates commands): use \\x3b"
    if any(m.backend == backend and m.serves(segment) for m in router.segment_maps):
        return None
    source = f"header: {segment.header.name}" if segment.header is not None else f"cookie: {segment.cookie.name}"
    return (
        f"no segment map for {segment.describe()} on backend {backend!r}: add "
        f"{{backend: {backend}, {source}, map: /etc/haproxy/{backend}-segment.map}} to the router's "
        "`segment_maps` and the rule that reads it to the backend in haproxy.cfg (docs/shapes.md)"
    )


class HAProxySegments:
    """Fills the backend's segment maps: at most one entry in all of them, the current segment's."""

    def __init__(self, runtime: RuntimeClient, maps: list[SegmentMap]):
        self.runtime = runtime
        self.maps = maps

    def set_segment(self, service: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        backend = backend_of(service)
        check_name(version, "server")
        mine = [m for m in self.maps if m.backend == backend]
        target = next((m for m in mine if segment is not None and m.serves(segment)), None)
        if segment is not None and target is None:
            raise RouterError(
                f"HAProxy router has no segment map for {segment.describe()} on backend {backend!r}", retryable=False
            )
        wanted = {
            m.map: (
                [(segment.header.pattern if segment.header else segment.cookie.pattern, version)]  # type: ignore[union-attr]
                if m is target and segment is not None
                else []
            )
            for m in mine
        }
        if segment is not None and version not in self.runtime.servers(backend):
            raise RouterError(
                f"HAProxy backend {backend!r} has no server named {version!r} for the segment to reach",
                retryable=False,
            )
        # Add the new entry before removing the old ones, so the segment never has a moment
        # with no route to the candidate while it is being changed.
        for path, entries in wanted.items():
            current = dict(self.runtime.show_map(path))
            for key, value in entries:
                if key not in current:
                    self.runtime.add_map(path, key, value)
                elif current[key] != value:
                    self.runtime.set_map(path, key, value)
        for path, entries in wanted.items():
            keep = {key for key, _ in entries}
            for key, _ in self.runtime.show_map(path):
                if key not in keep:
                    self.runtime.del_map(path, key)
        for path, entries in wanted.items():
            actual = self.runtime.show_map(path)
            if actual != entries:
                raise RouterError(
                    f"HAProxy map {path} did not keep the segment Sluice set: wanted {entries}, read back {actual}; "
                    "is another tool changing it?",
                    retryable=True,
                )

    def get_segment(self, service: ServiceConfig) -> dict[str, list[tuple[str, str]]]:
        """Every segment map of the service's backend, with its entries (for tests and `doctor`)."""
        return {m.map: self.runtime.show_map(m.map) for m in self.maps if m.backend == backend_of(service)}
