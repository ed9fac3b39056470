"""Segments and mirrors on a Kubernetes route object (HTTPRoute, HTTPProxy, VirtualService).

A segment is an extra rule placed right before each rule that splits the service's traffic: the
same matches plus the segment's header (or cookie) match, sending everything to the candidate.
A mirror is added to each such rule (a RequestMirror filter, Istio's `mirror`). What Sluice
added is recorded in the object's `sluice.io/route-shape` annotation (JSON: the version, its
backend, the header match, the mirror's percent), written in the same patch. Sluice finds its own
rules again by that match and backend rather than by comparing whole rules, because an API server
may add defaults to what was written (a match's `type: Exact`, a backendRef's `weight: 1`).
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any

from app.core.config.shapes import anywhere

if TYPE_CHECKING:
    from app.core.config.shapes import MirrorConfig, SegmentConfig

ANNOTATION = "sluice.io/route-shape"

Rule = dict[str, Any]


def recorded(obj: dict[str, Any]) -> dict[str, Any]:
    """What Sluice added to the object: {"version", "backend", "match": [name, value] | None,
    "mirror": percent | None}; empty when nothing."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def cookie_regex(name: str, value: str) -> str:
    """A Cookie header holding `name=value` (the regex is matched anywhere in the header)."""
    return f"(^|;\\s*){re.escape(name)}={re.escape(value)}(;|$)"


def header_match(segment: SegmentConfig) -> tuple[str, str, bool]:
    """(header name, value, is_regex) for dialects that match the whole value (Envoy's RE2)."""
    if segment.header is not None:
        if segment.header.value is not None:
            return segment.header.name, segment.header.value, False
        return segment.header.name, anywhere(segment.header.pattern), True
    assert segment.cookie is not None
    return "Cookie", anywhere(cookie_regex(segment.cookie.name, segment.cookie.value)), True


class Shaper:
    """How one kind of route object spells rules, header matches and mirrors. `backend` names the
    candidate as the object refers to it (a Service name, an Istio host or subset)."""

    rules_key = ""

    def weighted(self, rule: Rule) -> bool:
        """A rule that splits this service's traffic (Sluice's weighted rule)."""
        raise NotImplementedError

    def segment_rule(self, rule: Rule, segment: SegmentConfig) -> Rule:
        raise NotImplementedError

    def is_segment_rule(self, rule: Rule, state: dict[str, Any]) -> bool:
        raise NotImplementedError

    def add_mirror(self, rule: Rule, percent: int) -> None:
        raise NotImplementedError

    def strip_mirror(self, rule: Rule, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def has_mirror(self, rule: Rule, state: dict[str, Any]) -> bool:
        raise NotImplementedError

    def backend(self) -> str:
        raise NotImplementedError

    def segment_rules(self, obj: dict[str, Any]) -> list[Rule]:
        """Sluice's segment rules in the object (the weight rewrite leaves them alone)."""
        state = recorded(obj)
        rules = (obj.get("spec") or {}).get(self.rules_key) or []
        return [r for r in rules if state.get("match") and self.is_segment_rule(r, state)]

    def reshape(
        self,
        obj: dict[str, Any],
        version: str,
        segment: SegmentConfig | None,
        mirror: MirrorConfig | None,
        keep_segment: bool = False,
        keep_mirror: bool = False,
    ) -> dict[str, Any] | None:
        """The merge patch giving `obj` this segment and mirror (None: it has them already).
        `keep_*` leaves that part as it is (setting the segment does not touch the mirror)."""
        before = recorded(obj)
        spec_rules = (obj.get("spec") or {}).get(self.rules_key) or []
        rules: list[Rule] = copy.deepcopy(spec_rules)
        state: dict[str, Any] = {"version": version, "backend": self.backend()}
        state["match"] = before.get("match") if keep_segment else None
        state["mirror"] = before.get("mirror") if keep_mirror else None
        if not keep_segment and before.get("match"):
            rules = [r for r in rules if not self.is_segment_rule(r, before)]
        if not keep_mirror and before.get("mirror"):
            for rule in rules:
                self.strip_mirror(rule, before)
        if segment is not None and not keep_segment:
            name, value, _ = header_match(segment)
            state["match"] = [name, value]
        if mirror is not None and not keep_mirror:
            state["mirror"] = mirror.percent
        out: list[Rule] = []
        for rule in rules:
            ours = self.weighted(rule) and not (state["match"] and self.is_segment_rule(rule, state))
            if ours and segment is not None and not keep_segment:
                out.append(self.segment_rule(rule, segment))
            if ours and mirror is not None and not keep_mirror:
                self.add_mirror(rule, mirror.percent)
            out.append(rule)
        final = state if state["match"] or state["mirror"] else {}
        if out == spec_rules and final == before:
            return None
        return {
            "metadata": {"annotations": {ANNOTATION: json.dumps(final, sort_keys=True) if final else None}},
            "spec": {self.rules_key: out},
        }

    def holds(self, obj: dict[str, Any], segment: bool, mirror: bool) -> bool:
        """Read back: the segment rule sits right before each weighted rule, the mirror is on each;
        or, when not wanted, none of Sluice's is left."""
        state = recorded(obj)
        rules = (obj.get("spec") or {}).get(self.rules_key) or []
        weighted = [
            i
            for i, r in enumerate(rules)
            if self.weighted(r) and not (state.get("match") and self.is_segment_rule(r, state))
        ]
        if bool(state.get("match")) != segment or bool(state.get("mirror")) != mirror or not weighted:
            return False
        if segment and not all(i > 0 and self.is_segment_rule(rules[i - 1], state) for i in weighted):
            return False
        return not mirror or all(self.has_mirror(rules[i], state) for i in weighted)


def _headers_have(headers: list[dict[str, Any]], name: str, value: str) -> bool:
    return any(str(h.get("name", "")).lower() == name.lower() and h.get("value") == value for h in headers)


class GatewayShaper(Shaper):
    """HTTPRoute: a rule with `matches[].headers[]` before each weighted rule; a RequestMirror filter."""

    rules_key = "rules"

    def __init__(self, weighted: Any, candidate_ref: dict[str, Any]):
        self._weighted = weighted
        self.ref = {k: v for k, v in candidate_ref.items() if k != "weight"}

    def backend(self) -> str:
        return str(self.ref["name"])

    def weighted(self, rule: Rule) -> bool:
        return bool(self._weighted(rule))

    def segment_rule(self, rule: Rule, segment: SegmentConfig) -> Rule:
        name, value, regex = header_match(segment)
        match = {"type": "RegularExpression" if regex else "Exact", "name": name, "value": value}
        matches = [{**m, "headers": [*(m.get("headers") or []), match]} for m in rule.get("matches") or [{}]]
        extra: Rule = {"matches": matches, "backendRefs": [dict(self.ref)]}
        filters = [f for f in rule.get("filters") or [] if f.get("type") != "RequestMirror"]
        if filters:
            extra["filters"] = filters
        return extra

    def is_segment_rule(self, rule: Rule, state: dict[str, Any]) -> bool:
        name, value = state["match"]
        refs = rule.get("backendRefs") or []
        matches = rule.get("matches") or []
        return (
            bool(refs and matches)
            and all(r.get("name") == state["backend"] for r in refs)
            and all(_headers_have(m.get("headers") or [], name, value) for m in matches)
        )

    def add_mirror(self, rule: Rule, percent: int) -> None:
        mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": dict(self.ref), "percent": percent}}
        rule["filters"] = [*(rule.get("filters") or []), mirror]

    def _ours(self, f: dict[str, Any], state: dict[str, Any]) -> bool:
        return (
            f.get("type") == "RequestMirror"
            and ((f.get("requestMirror") or {}).get("backendRef") or {}).get("name") == state["backend"]
        )

    def strip_mirror(self, rule: Rule, state: dict[str, Any]) -> None:
        if any(self._ours(f, state) for f in rule.get("filters") or []):
            rule["filters"] = [f for f in rule["filters"] if not self._ours(f, state)]
            if not rule["filters"]:
                del rule["filters"]

    def has_mirror(self, rule: Rule, state: dict[str, Any]) -> bool:
        return any(
            self._ours(f, state) and f["requestMirror"].get("percent") == state["mirror"]
            for f in rule.get("filters") or []
        )


class ContourShaper(Shaper):
    """HTTPProxy: a route with an extra `conditions[].header` before each weighted route (no mirror)."""

    rules_key = "routes"

    def __init__(self, weighted: Any, candidate: dict[str, Any]):
        self._weighted = weighted
        self.service = {k: v for k, v in candidate.items() if k != "weight"}

    def backend(self) -> str:
        return str(self.service["name"])

    def weighted(self, rule: Rule) -> bool:
        return bool(self._weighted(rule))

    def segment_rule(self, rule: Rule, segment: SegmentConfig) -> Rule:
        name, value, regex = header_match(segment)
        condition = {"header": {"name": name, ("regex" if regex else "exact"): value}}
        extra = {k: copy.deepcopy(v) for k, v in rule.items() if k not in ("services", "conditions")}
        extra["conditions"] = [*(rule.get("conditions") or []), condition]
        extra["services"] = [dict(self.service)]
        return extra

    def is_segment_rule(self, rule: Rule, state: dict[str, Any]) -> bool:
        name, value = state["match"]
        services = rule.get("services") or []
        headers = [c["header"] for c in rule.get("conditions") or [] if isinstance(c.get("header"), dict)]
        return (
            bool(services)
            and all(s.get("name") == state["backend"] for s in services)
            and any(
                str(h.get("name", "")).lower() == name.lower() and value in (h.get("regex"), h.get("exact"))
                for h in headers
            )
        )


class IstioShaper(Shaper):
    """VirtualService: an http route with `match[].headers` before each weighted route; `mirror`."""

    rules_key = "http"

    def __init__(self, weighted: Any, candidate: dict[str, Any]):
        self._weighted = weighted
        self.destination = dict(candidate)

    def backend(self) -> str:
        return json.dumps(self.destination, sort_keys=True)

    def weighted(self, rule: Rule) -> bool:
        return bool(self._weighted(rule))

    def segment_rule(self, rule: Rule, segment: SegmentConfig) -> Rule:
        name, value, regex = header_match(segment)
        matcher = {"regex" if regex else "exact": value}
        # Istio wants header names in lower case.
        matches = [
            {**m, "headers": {**(m.get("headers") or {}), name.lower(): matcher}} for m in rule.get("match") or [{}]
        ]
        skip = ("route", "match", "mirror", "mirrorPercentage", "mirrors", "name")
        extra = {k: copy.deepcopy(v) for k, v in rule.items() if k not in skip}
        extra["match"] = matches
        extra["route"] = [{"destination": dict(self.destination)}]
        return extra

    def _is_candidate(self, dest: Any, state: dict[str, Any]) -> bool:
        want = json.loads(state["backend"])
        return isinstance(dest, dict) and all(dest.get(k) == v for k, v in want.items() if k in ("host", "subset"))

    def is_segment_rule(self, rule: Rule, state: dict[str, Any]) -> bool:
        name, value = state["match"]
        route = rule.get("route") or []
        matches = rule.get("match") or []
        return (
            bool(route and matches)
            and all(self._is_candidate(r.get("destination"), state) for r in route)
            and all(value in ((m.get("headers") or {}).get(name.lower()) or {}).values() for m in matches)
        )

    def add_mirror(self, rule: Rule, percent: int) -> None:
        rule["mirror"] = dict(self.destination)
        rule["mirrorPercentage"] = {"value": float(percent)}

    def strip_mirror(self, rule: Rule, state: dict[str, Any]) -> None:
        if self._is_candidate(rule.get("mirror"), state):
            rule.pop("mirror", None)
            rule.pop("mirrorPercentage", None)

    def has_mirror(self, rule: Rule, state: dict[str, Any]) -> bool:
        value = (rule.get("mirrorPercentage") or {}).get("value")
        return self._is_candidate(rule.get("mirror"), state) and value == float(state["mirror"])


# --- ingress-nginx ----------------------------------------------------------------------------------

NGINX = "nginx.ingress.kubernetes.io/"
NGINX_SEGMENT_KEYS = tuple(
    NGINX + k for k in ("canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie")
)


def nginx_segment_annotations(segment: SegmentConfig | None) -> dict[str, str | None]:
    """The canary Ingress's segment annotations (None deletes one in a merge patch). ingress-nginx
    reads the header first, then the cookie, then the weight; `-pattern` is a PCRE searched in the
    value, `-value` an exact value, and a cookie routes to the canary only when it says `always`."""
    out: dict[str, str | None] = dict.fromkeys(NGINX_SEGMENT_KEYS)
    if segment is not None and segment.header is not None:
        out[NGINX + "canary-by-header"] = segment.header.name
        if segment.header.value is not None:
            out[NGINX + "canary-by-header-value"] = segment.header.value
        else:
            out[NGINX + "canary-by-header-pattern"] = segment.header.regex
    elif segment is not None and segment.cookie is not None:
        out[NGINX + "canary-by-cookie"] = segment.cookie.name
    return out


def nginx_check_step(router: Any, service: Any, step: Any) -> str | None:
    cookie = step.segment.cookie if step.segment is not None else None
    if cookie is not None and cookie.value != "always":
        return (
            f"ingress-nginx sends a cookie segment to the canary only when the cookie's value is `always` "
            f"(canary-by-cookie), not {cookie.value!r}: use value: always, or a header segment"
        )
    return None
