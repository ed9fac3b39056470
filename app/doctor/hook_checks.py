"""`sluice doctor`'s checks of hooks and CircleCI: each hook's URLs are well formed and its secrets set,
a CircleCI token is valid (`GET /me`), and CircleCI deploys ignored for want of a project are shown."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from app.context import Context
from app.doctor.findings import Finding


def check_hooks(ctx: Context) -> list[Finding]:
    out = []
    circleci_token_envs = set()
    for hook in ctx.config.hooks:
        problems, fixes = [], []
        fields = hook.model_dump()
        for key, value in fields.items():
            if (key == "url" or key.endswith("_url")) and isinstance(value, str) and not _well_formed(value):
                problems.append(f"{key} {value!r} is not an http(s) URL with a host")
                fixes.append(f"give `{key}` as http(s)://host/path")
            if key.endswith("_env") and isinstance(value, str):
                secret = os.environ.get(value)
                if not secret:
                    problems.append(f"${value} ({key}) is not set in the environment")
                    fixes.append(f"export {value}=... where Sluice's web and worker processes run")
                elif key == "url_env" and not _well_formed(secret):
                    problems.append(f"${value} does not hold an http(s) URL")
                    fixes.append(f"set {value} to the webhook URL")
        if hook.type.startswith("circleci"):
            circleci_token_envs.add(fields.get("token_env", "CIRCLECI_TOKEN"))
        if problems:
            out.append(Finding(f"hook {hook.name}", "fail", "; ".join(problems), "; ".join(dict.fromkeys(fixes))))
        else:
            out.append(Finding(f"hook {hook.name}", "pass", f"{hook.type}: URL and secrets present"))
    for env in sorted(circleci_token_envs):
        token = os.environ.get(env)
        if token:
            out.append(check_circleci(ctx, env, token))
    return out


def _well_formed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_circleci(ctx: Context, env: str, token: str) -> Finding:
    import requests

    from integrations.circleci.hooks import circleci_api_url

    base = circleci_api_url(ctx.config)
    try:
        resp = requests.get(f"{base}/me", headers={"Circle-Token": token}, timeout=10)
    except requests.RequestException as exc:
        return Finding("circleci", "fail", f"cannot reach {base}: {type(exc).__name__}", "check circleci.api_url")
    if resp.status_code == 200:
        try:
            who = resp.json().get("login") or resp.json().get("name") or "?"
        except ValueError:
            who = "?"
        return Finding("circleci", "pass", f"${env} is valid at {base} (user {who})")
    return Finding(
        "circleci",
        "fail",
        f"GET {base}/me with ${env} answered {resp.status_code}",
        f"create a personal API token in CircleCI (User settings → Personal API Tokens) and set {env}",
    )


def check_unmatched_deploys(ctx: Context) -> list[Finding]:
    """CircleCI deploys answered "ignored" because no project matched their slug (app/release/unmatched.py)."""
    from app.release.unmatched import unmatched_deploys
    from app.store import StoreUnavailable

    try:
        found = unmatched_deploys(ctx)
    except StoreUnavailable:
        return []  # check_redis already says so
    return [
        Finding(f"circleci project {u.slug}", "warn", f"{u.count} deploy(s) ignored: no circleci.projects entry", u.fix)
        for u in found
    ]
