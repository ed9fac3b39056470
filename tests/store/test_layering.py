"""The store owns Redis: no module outside `app/store/` calls Redis or spells one of its keys.

A grep over the source, so that a shortcut (`ctx.store.r.hset(...)`, `"sluice:..."`) fails here
instead of scattering key names again. The RQ wiring (workers/worker.py) is the one exception:
RQ needs the connection object itself.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "workers", "integrations")
EXEMPT = {Path("app/store"), Path("workers/worker.py")}

REDIS_COMMANDS = (
    r"get|set|delete|exists|p?expire|ttl|incr(by)?|hset(nx)?|h?mget|hget(all)?|hincrby(float)?|[lr]push|lrange|llen"
    r"|z(add|rem|score|card|count|range|revrange|rangebyscore)|scan_iter|keys|pipeline|eval(sha)?|register_script"
)
RULES = {
    "imports redis": re.compile(r"^\s*(import redis\b|from redis\b)", re.M),
    "reaches for the store's connection": re.compile(r"\bstore\.r\b|\bself\.r\b"),
    "calls a Redis command": re.compile(r"\.r\.(" + REDIS_COMMANDS + r")\("),
    "spells a Redis key": re.compile(
        r"[\"'](sluice|tick|hook|lock|release|dedup|deploy|active|stable|due|delivery|event|metrics|rq):(?!\s)"
    ),
}


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if not any(rel == e or e in rel.parents for e in EXEMPT):
                files.append(path)
    return files


def test_the_grep_sees_the_source_tree() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert {"app/web/receivers.py", "app/telemetry/metrics.py", "workers/watcher.py", "workers/tick.py"} <= names
    assert not any(n.startswith("app/store/") for n in names)


def test_no_redis_outside_the_store() -> None:
    offences = []
    for path in _sources():
        text = path.read_text()
        for what, rule in RULES.items():
            for match in rule.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                offences.append(f"{path.relative_to(ROOT)}:{line}: {what}: {match.group(0)!r}")
    assert not offences, "Redis belongs to app/store (add a Store method, keys in app/store/keys.py):\n" + "\n".join(
        offences
    )


def test_the_rules_catch_what_they_are_for() -> None:
    samples = [
        "import redis",
        "ctx.store.r.hset(key, 'a', 1)",
        'key = f"sluice:k8s:{release.id}"',
        "member = f'tick:{rid}:{seq}'",
    ]
    for sample in samples:
        assert any(rule.search(sample) for rule in RULES.values()), sample
