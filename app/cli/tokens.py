"""`sluice token create|list|revoke`: people's API tokens, written straight to Redis (REDIS_URL).

Run where Sluice's Redis is reachable (e.g. `kubectl exec` into the worker). The token is printed
once; Redis keeps only its SHA-256 (app/store/people.py). What its holder does is recorded under
the name given here.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from app.store import Store

ROLES = ("intake", "read", "operator", "admin")  # as app/web/auth.py grants them
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _store() -> Store:
    from app.config_file.loader import ConfigError
    from app.context import redis_url
    from app.store import Store, connect

    try:
        return Store(connect(redis_url()))
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(1)


@click.group()
def token() -> None:
    """People's API tokens: create (printed once), list, revoke."""


@token.command()
@click.option("--name", required=True, help="Whose token: recorded on what they do (a-z, 0-9, '-', '_').")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do (docs/security.md).")
def create(name: str, role: str) -> None:
    """Create NAME's token (replacing their earlier one) and print it once."""
    if not _NAME.fullmatch(name):
        click.echo(
            f"--name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            err=True,
        )
        sys.exit(2)
    store = _store()
    value = store.people.create_token(name, role)
    store.people.audit(
        {"at": time.time(), "who": "cli", "role": "admin", "action": "token-create", "target": name, "detail": role}
    )
    click.echo(value)
    click.echo(f"token for {name} ({role}): shown once, store it now; Sluice keeps only its hash", err=True)


@token.command(name="list")
def list_tokens() -> None:
    """Who has a token, with their role (never the token)."""
    for person in _store().people.people():
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(person["created_at"]))
        click.echo(f"{person['name']}\t{person['role']}\tcreated {created} UTC")


@token.command()
@click.option("--name", required=True)
def revoke(name: str) -> None:
    """Revoke NAME's token: it stops working at once (dashboard sessions opened with it too)."""
    store = _store()
    if not store.people.revoke(name):
        click.echo(f"{name} has no token", err=True)
        sys.exit(1)
    store.people.audit(
        {"at": time.time(), "who": "cli", "role": "admin", "action": "token-revoke", "target": name, "detail": ""}
    )
    click.echo(f"revoked {name}'s token")
