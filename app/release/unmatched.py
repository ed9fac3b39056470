"""CircleCI deploys that matched no configured project: what the dashboard and `sluice doctor` show.

The web receiver counts each one by its project slug (metric `sluice_circleci_unmatched_deploys`).
A slug is shown while the configuration still does not match it, so fixing `circleci.projects`
clears it without resetting any counter.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.context import Context
from integrations.circleci.events import canonical_slug

COUNTER = "circleci_unmatched_deploys"
SHOWN = 20  # the most frequent slugs; a flood of made-up slugs must not flood the page


class UnmatchedDeploy(BaseModel):
    slug: str = Field(description="The project slug CircleCI sent, which no circleci.projects entry matches.")
    count: int = Field(description="Deploy jobs (or workflows) from it that were ignored.")
    fix: str = Field(description="How to make Sluice release them.")


class UnmatchedDeployList(BaseModel):
    unmatched: list[UnmatchedDeploy]


def unmatched_deploys(ctx: Context) -> list[UnmatchedDeploy]:
    """Slugs whose deploys were ignored and that the configuration still does not match, most first."""
    known = {canonical_slug(p.slug): p.slug for p in ctx.config.circleci.projects}
    counts: dict[str, int] = {}
    for labels, value in ctx.store.metrics.counter(COUNTER).items():
        slug = labels[0] if labels else ""
        if slug and canonical_slug(slug) not in known:
            counts[slug] = counts.get(slug, 0) + int(value)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:SHOWN]
    return [UnmatchedDeploy(slug=slug, count=n, fix=_fix(slug, list(known.values()))) for slug, n in top]


def _fix(slug: str, configured: list[str]) -> str:
    repo = slug.rsplit("/", 1)[-1].lower()
    near = [c for c in configured if c.rsplit("/", 1)[-1].lower() == repo]
    if near:
        return (
            f"the entry {near[0]!r} in circleci.projects looks meant for it: write its slug as {slug!r} "
            "(gh/ and github/ are the same; check the organisation's spelling)"
        )
    return f"add it to circleci.projects (`- slug: {slug}` with its deploy jobs), or ignore it if it is not yours"
