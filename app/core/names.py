"""What a service, version or namespace may look like.

Every one of these values ends up inside PromQL, Redis keys and router commands, so
they are checked once, at the door, against Kubernetes label-value syntax.
"""

from __future__ import annotations

import re

# Kubernetes label value: empty or [A-Za-z0-9] at both ends, [-A-Za-z0-9_.] inside, <= 63 chars.
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # use fullmatch()
# Names Sluice gives things in its own config (applications, policies, checks, hooks).
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?$")
_SEMVER_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def check_label_value(value: object, what: str) -> str:
    """Return `value` if it is a valid label value; raise ValueError saying how to fix it otherwise."""
    if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid label value: use 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def semver_bump(source: str | None, target: str) -> str | None:
    """'major', 'minor' or 'patch' for a move from source to target; None when either is not semver."""
    a = _SEMVER_RE.match(source or "")
    b = _SEMVER_RE.match(target)
    if not a or not b:
        return None
    old, new = tuple(map(int, a.groups())), tuple(map(int, b.groups()))
    if new[0] != old[0]:
        return "major"
    if new[1] != old[1]:
        return "minor"
    return "patch"
