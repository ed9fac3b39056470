"""The shared secrets Sluice checks requests against must be hard to guess (issue 20, item 8).

A token is compared in constant time and failed logins are rate limited (app/web/limits.py), but a
short or patterned token is still found by guessing. The web process refuses to start with one
(app/web/serving.py's `on_starting`), naming the setting and how to make a good one. The bar is that
of `openssl rand -hex 16` (the shortest the docs suggest): 32 characters, and not a few characters
repeated. Pure: it reads the mapping it is given.
"""

from __future__ import annotations

from collections.abc import Mapping

# Secrets a caller presents to Sluice (bearer tokens, HMAC keys of signed notifications).
CHECKED = (
    "SLUICE_API_TOKEN",
    "SLUICE_READ_TOKEN",
    "SLUICE_INTAKE_TOKEN",
    "SLUICE_DEPLOY_SECRET",
    "CIRCLECI_WEBHOOK_SECRET",
)
MIN_LENGTH = 32
MIN_DISTINCT = 8
HOW = "python -c 'import secrets; print(secrets.token_urlsafe(32))' (or openssl rand -hex 32)"


def weak_tokens(env: Mapping[str, str]) -> list[str]:
    """One line per weak secret in `env`: which setting, why, how to fix it (never the value)."""
    problems = []
    for name in CHECKED:
        value = env.get(name, "")
        if not value:
            continue
        if len(value) < MIN_LENGTH:
            why = f"is {len(value)} characters long (at least {MIN_LENGTH})"
        elif len(set(value)) < MIN_DISTINCT:
            why = f"repeats a few characters (at least {MIN_DISTINCT} different ones)"
        else:
            continue
        problems.append(f"{name} {why}: set it to a random one, made with {HOW}")
    return problems
