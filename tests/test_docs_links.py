"""Every relative link in README.md and docs/*.md points at a file that exists and, with a #anchor,
at a heading of that page: the README sends newcomers into docs/, and a moved section must not leave
a dead link behind. Anchors follow GitHub's rule (lower case, punctuation dropped, spaces to
hyphens, -1/-2 for repeats), since GitHub is where these pages are read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows).
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def _prose(text: str) -> str:
    """The text without code blocks: a `# comment` in a shell block is not a heading."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, only word characters, hyphens and
    spaces kept, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for match in HEADING.finditer(_prose(path.read_text())):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(pages: list[Path]) -> list[str]:
    """One line per relative link that does not resolve: `page: target (why)`."""
    problems: list[str] = []
    for page in pages:
        for target in LINK.findall(INLINE_CODE.sub("", _prose(page.read_text()))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
                continue
            where, _, fragment = target.partition("#")
            dest = (page.parent / where).resolve() if where else page
            if not dest.exists():
                problems.append(f"{page.name}: {target} (no such file)")
            elif fragment and dest.suffix != ".md":
                problems.append(f"{page.name}: {target} (an anchor into a file that is not a markdown page)")
            elif fragment and fragment.lower() not in anchors(dest):
                problems.append(f"{page.name}: {target} (no heading with that anchor in {dest.name})")
    return problems


def test_readme_and_docs_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 5
    assert broken_links(pages) == []


def test_a_dead_link_or_anchor_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Rolling back\n\n## Rolling back\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page: the `start`\n\n"
        "[ok](other.md#rolling-back) [ok too](other.md#rolling-back-1) [self](#page-the-start)\n"
        "[gone](missing.md) [bad anchor](other.md#rolling-forward) [bad self](#nowhere)\n"
        "![image](missing.png) [web](https://example.com/x#y)\n"
        "```sh\n[not a link](nowhere.md)\n# not a heading\n```\n"
        "`[code](nowhere.md)`\n"
    )
    assert broken_links([page]) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#rolling-forward (no heading with that anchor in other.md)",
        "page.md: #nowhere (no heading with that anchor in page.md)",
        "page.md: missing.png (no such file)",
    ]


def test_github_anchor_rule() -> None:
    assert slug("α split over the checks and the steps") == "α-split-over-the-checks-and-the-steps"
    assert slug("Policy `readme`") == "policy-readme"
    assert slug("What it survives, and what it needs") == "what-it-survives-and-what-it-needs"
    assert slug("Metrics providers: Prometheus, Datadog") == "metrics-providers-prometheus-datadog"
    assert slug("Hooks: telling CI and people") == "hooks-telling-ci-and-people"
