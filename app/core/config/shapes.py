"""Release shapes beyond weights: a step's `segment` (only some requests go to the candidate)
and `mirror` (a copy of stable's requests goes to the candidate; its answers are dropped).

The models live here, below app.core.config.policy, so that both the policy and the routers
(which turn a segment into their own match rules) read the same validated values.

A header regex means "matches anywhere in the value", like grep, whatever the router: routers
whose dialect matches the whole value (Envoy's RE2: Istio, Contour, most Gateway API
implementations) are given `.*(?:regex).*` (`anywhere`). Only the part of regex syntax that
every router's dialect reads the same way is accepted (RE2 and PCRE agree on it): no
lookaround, no backreferences, no possessive or atomic groups, no inline comments.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.core.config.base import Strict

Shape = Literal["weights", "segment", "mirror"]
SHAPES: tuple[Shape, ...] = ("weights", "segment", "mirror")

MAX_REGEX = 256
# An HTTP header name (RFC 9110 token).
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# A cookie name (token) and value (RFC 6265 cookie-octets: no space, quote, comma, ';' or '\').
COOKIE_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
COOKIE_VALUE_RE = re.compile(r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{1,200}$")
# Constructs RE2 (Envoy) refuses or PCRE reads differently; the message says which.
_UNPORTABLE = [
    (re.compile(r"\(\?<?[=!]"), "lookahead/lookbehind ((?=, (?!, (?<=, (?<!)"),
    (re.compile(r"\\[1-9]|\(\?P=|\\k<"), "backreferences (\\1, (?P=name))"),
    (re.compile(r"\(\?>"), "atomic groups ((?>...))"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers (*+, ++, ?+)"),
    (re.compile(r"\(\?#"), "inline comments ((?#...))"),
]


def check_regex(value: str) -> str:
    """A header regex every router can use: it compiles, is short, and uses no construct one of
    the routers' dialects lacks. Control characters are refused: they cannot be in a header and
    would end a runtime API command (HAProxy) early."""
    if not value:
        raise ValueError("the regex is empty: it would match every request (give a pattern, e.g. Chrome)")
    if len(value) > MAX_REGEX:
        raise ValueError(f"the regex is {len(value)} characters long; at most {MAX_REGEX} are allowed")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("the regex contains a control character (newline, tab...): headers cannot hold them")
    for pattern, what in _UNPORTABLE:
        if pattern.search(value):
            raise ValueError(
                f"the regex {value!r} uses {what}, which the routers' regex dialects (RE2 in Envoy) do not "
                "support; rewrite it without them"
            )
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"the regex {value!r} does not compile: {exc}") from None
    return value


def anywhere(regex: str) -> str:
    """The regex for a dialect that must match the whole value (Envoy's RE2)."""
    return f".*(?:{regex}).*"


class HeaderMatch(Strict):
    name: str = Field(description="The request header, e.g. User-Agent (case does not matter).")
    regex: str | None = Field(None, description="Matches anywhere in the value, e.g. Chrome.")
    value: str | None = Field(None, description="The exact value (instead of a regex).")

    @field_validator("name")
    @classmethod
    def _header_name(cls, v: str) -> str:
        if not HEADER_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a header name: use letters, digits and '-' (e.g. User-Agent)")
        return v

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return None if v is None else check_regex(v)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[\x21-\x7E]([\x20-\x7E]{0,198}[\x21-\x7E])?", v):
            raise ValueError("the header value must be 1-200 printable ASCII characters, without surrounding spaces")
        return v

    @model_validator(mode="after")
    def _one_matcher(self) -> HeaderMatch:
        if (self.regex is None) == (self.value is None):
            raise ValueError("a header segment needs exactly one of `regex` (e.g. Chrome) or `value` (exact)")
        return self

    @property
    def pattern(self) -> str:
        """The match as a regex ("anywhere" semantics): the exact value becomes ^value$."""
        return self.regex if self.regex is not None else f"^{re.escape(self.value or '')}$"


class CookieMatch(Strict):
    name: str = Field(description="The cookie's name, e.g. canary.")
    value: str = Field("always", description="The cookie's exact value (ingress-nginx supports only `always`).")

    @field_validator("name")
    @classmethod
    def _cookie_name(cls, v: str) -> str:
        if not COOKIE_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a cookie name: use letters, digits, '-' and '_'")
        return v

    @field_validator("value")
    @classmethod
    def _cookie_value(cls, v: str) -> str:
        if not COOKIE_VALUE_RE.match(v):
            raise ValueError(f"{v!r} is not a cookie value: 1-200 characters without spaces, quotes, ',', ';' or '\\'")
        return v

    @property
    def pattern(self) -> str:
        return f"^{re.escape(self.value)}$"


class SegmentConfig(Strict):
    """Requests that go to the candidate whatever the step's weight: those with a header
    (matching a regex or a value) or a cookie."""

    header: HeaderMatch | None = None
    cookie: CookieMatch | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SegmentConfig:
        if (self.header is None) == (self.cookie is None):
            raise ValueError(
                "a segment names exactly one of `header` ({header: {name: User-Agent, regex: Chrome}}) or "
                "`cookie` ({cookie: {name: canary, value: always}})"
            )
        return self

    def describe(self) -> str:
        if self.header is not None:
            how = f"~ /{self.header.regex}/" if self.header.regex is not None else f"= {self.header.value!r}"
            return f"header {self.header.name} {how}"
        assert self.cookie is not None
        return f"cookie {self.cookie.name} = {self.cookie.value!r}"


class MirrorConfig(Strict):
    """A copy of this share of stable's requests is sent to the candidate; its answers are dropped."""

    percent: int = Field(100, ge=1, le=100, description="Share of stable's requests copied to the candidate.")


def step_shapes(segment: SegmentConfig | None, mirror: MirrorConfig | None, weight: int) -> list[Shape]:
    """The shapes a step needs from its router."""
    needed: list[Shape] = []
    if 0 < weight < 100:
        needed.append("weights")
    if segment is not None:
        needed.append("segment")
    if mirror is not None:
        needed.append("mirror")
    return needed
