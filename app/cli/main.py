"""The `sluice` command."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import click

from app.cli.client import ApiClientError, SluiceClient
from app.cli.report import EXIT_FOR_STATE, WIDTH, checks_table, clock, console, err, follow, progress_line
from app.config_file.loader import ConfigError, json_schema, load_config

if TYPE_CHECKING:
    from app.context import Context

__all__ = ["EXIT_FOR_STATE", "WIDTH", "follow", "main"]
# A rollback the web handed to the workers: how long `sluice rollback` waits for one to finish it.
ROLLBACK_FOLLOW_SECONDS = 60.0


def _client(url: str | None) -> SluiceClient:
    return SluiceClient(url)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/] {message}")
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sluice", prog_name="sluice")
def main() -> None:
    """Sluice: release a deployed version by shifting traffic in steps, judged by Prometheus."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False), envvar="SLUICE_CONFIG")
def validate(config: str) -> None:
    """Check a configuration file; print every problem with its line and a fix."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(1)
    from integrations.circleci.events import github_app_gaps

    for project in cfg.circleci.projects:
        for d in project.deploys:
            gaps = github_app_gaps(d.version)
            if gaps:
                fields = ", ".join("{" + g + "}" for g in gaps)
                err.print(
                    f"[yellow]warning:[/] circleci project {project.slug}, deploy {d.job or d.workflow}: the version "
                    f"template {d.version!r} needs {fields}, which GitHub App pipelines (slug "
                    "circleci/<org-id>/<project-id>) do not send: their deploys would be refused; "
                    "use {pipeline.number} or {pipeline.id} for such projects"
                )
    services = sum(len(a.services) for a in cfg.applications)
    console.print(
        f"{config}: ok — {len(cfg.applications)} application(s), {services} service(s), "
        f"{len(cfg.policies)} polic(ies), {len(cfg.hooks)} hook(s)"
    )


@main.command()
def schema() -> None:
    """Print the configuration's JSON Schema."""
    click.echo(json_schema())


@main.command()
def kinds() -> None:
    """List the router, hook and metrics provider types this Sluice knows (from their registries)."""
    from app.config_file.kinds import all_kinds

    for section, listing in all_kinds().items():
        console.print(f"[bold]{section}[/]")
        for name, description in listing.items():
            console.print(f"  {name:<28} {description}")


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, envvar="SLUICE_BIND")
@click.option("--workers", default=2, show_default=True, type=int)
def serve(bind: str, workers: int) -> None:
    """Run the web process (gunicorn serving app:create_app(), configured by app/web/serving.py)."""
    load_config(os.environ.get("SLUICE_CONFIG", "sluice.yaml"))  # fail fast, with the file's errors
    app_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this file is app/cli/main.py
    serving = os.path.join(app_dir, "web", "serving.py")
    args = [sys.executable, "-m", "gunicorn", "-c", serving, "--bind", bind, "--workers", str(workers)]
    args.append("app:create_app()")
    os.execv(sys.executable, args)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (for tests).")
@click.option(
    "--serves",
    type=click.Choice(["all", "releases", "jobs"]),
    default="all",
    show_default=True,
    help="releases: ticks and hook deliveries; jobs: replays and backtests (seconds of CPU each: with live "
    "releases, run one worker with --serves jobs so that no tick waits behind a backtest).",
)
def worker(burst: bool, serves: str) -> None:
    """Run an RQ worker for release ticks, hook deliveries and replay/backtest jobs (with a standby scheduler)."""
    from app.telemetry.logs import configure_logging
    from workers.worker import run_worker

    configure_logging()
    run_worker(burst=burst, serves=serves)


@main.command()
def watcher() -> None:
    """Watch Kubernetes Deployments and start releases of new versions (one leader, others stand by)."""
    from app.telemetry.logs import configure_logging
    from workers.watcher import run_watcher

    configure_logging()
    run_watcher()


@main.command()
@click.argument("release", required=False)
@click.option("--service")
@click.option("--application")
@click.option("--state")
@click.option("--url", envvar="SLUICE_URL", help="Sluice's address (default http://127.0.0.1:8000).")
def status(
    release: str | None, service: str | None, application: str | None, state: str | None, url: str | None
) -> None:
    """Show one release (its checks per step) or the list of releases."""
    client = _client(url)
    try:
        if release:
            data = client.release(release)
            console.print(progress_line(data))
            console.print(checks_table(data))
            return
        listing = client.releases(service=service, application=application, state=state)
    except ApiClientError as exc:
        _fail(str(exc))
        return
    for r in listing["releases"]:
        console.print(
            f"{r['id']}  {r['application']}/{r['service']}  {r['source_version']} -> "
            f"{r['target_version']}  {r['state']:<9}  step {r['current_step'] or '-'}  "
            f"started {clock(r['created_at'])}" + ("  [magenta]\\[shadow][/]" if r.get("mode") == "shadow" else "")
        )
    if not listing["releases"]:
        console.print("no releases")


@main.command()
@click.argument("release")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", default=0.0, help="Give up after this many seconds (0: never). Exit 3.")
@click.option("--url", envvar="SLUICE_URL")
def watch(release: str, interval: float, timeout: float, url: str | None) -> None:
    """Follow a release until it ends. Exit 0 succeeded, 1 failed, 2 aborted (for CI jobs)."""
    code = follow(_client(url), release, interval, timeout)
    sys.exit(code)


def _steer_command(action: str, doc: str) -> None:
    @main.command(name=action, help=doc)
    @click.argument("release")
    @click.option("--reason", default="", help="Why (recorded on the release).")
    @click.option("--url", envvar="SLUICE_URL")
    def command(release: str, reason: str, url: str | None) -> None:
        try:
            data = _client(url).steer(release, action, reason)
        except ApiClientError as exc:
            _fail(str(exc))
            return
        console.print(progress_line(data))
        if not data.get("weights_applied", True):  # the web hands the act over (SLUICE_WEB_STEERS=false)
            console.print(f"recorded: the worker applies it to the router; follow it with `sluice watch {release}`")


_steer_command("pause", "Hold a release at its current step.")
_steer_command("resume", "Resume a paused release.")
_steer_command("promote", "Send all traffic to the candidate now and mark it stable.")
_steer_command("abort", "Put all traffic back on the stable version now.")


@main.command()
@click.argument("service")
@click.option("--reason", default="", help="Why (recorded on the rollback release).")
@click.option("--by", default=None, help="Who rolls back (default: $USER).")
@click.option("--force", is_flag=True, help="Abort a release of the service that is in flight, and roll back.")
@click.option("--application", help="The service's application, if several have one of its name.")
@click.option("--url", envvar="SLUICE_URL")
def rollback(service: str, reason: str, by: str | None, force: bool, application: str | None, url: str | None) -> None:
    """Put all of SERVICE's traffic back on its previous stable version now (undo the last promotion).
    The version taken out becomes known-bad. Exit 0 when rolled back, 1 otherwise."""
    who = by or os.environ.get("USER") or "cli"
    try:
        data = _client(url).rollback(service, reason, who, force, application)
    except ApiClientError as exc:
        _fail(str(exc))
        return
    console.print(progress_line(data))
    if data.get("state") == "running":  # recorded; the worker applies it (SLUICE_WEB_STEERS=false)
        console.print("recorded: the worker applies it to the router; waiting for it")
        sys.exit(0 if follow(_client(url), data["id"], 1.0, ROLLBACK_FOLLOW_SECONDS) == 0 else 1)
    if data.get("state") != "succeeded":
        _fail(f"the rollback did not complete: {data.get('reason')}")


@main.command(name="known-bad")
@click.argument("service")
@click.option("--clear", "version", metavar="VERSION", help="Forget that VERSION is bad (it can be released again).")
@click.option("--application", help="The service's application, if several have one of its name.")
@click.option("--url", envvar="SLUICE_URL")
def known_bad(service: str, version: str | None, application: str | None, url: str | None) -> None:
    """List SERVICE's known-bad versions (a new deploy of one is refused), or clear one."""
    client = _client(url)
    try:
        if version:
            cleared = client.clear_known_bad(service, version, application)["cleared"]
            console.print(f"cleared: {cleared['version']} ({cleared['reason']}); it can be released again")
            return
        listing = client.known_bad(service, application)
    except ApiClientError as exc:
        _fail(str(exc))
        return
    for entry in listing["known_bad"]:
        console.print(
            f"{entry['version']:<16} {entry['reason']}, {_minute(entry['at'])}  release {entry['release_id']}",
            highlight=False,
        )
    if not listing["known_bad"]:
        console.print(f"no known-bad versions of {listing['service']}")


def _minute(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


@main.command()
@click.argument("release")
@click.option("--gate", default=None, help="The manual gate to approve (default: the one the release waits for).")
@click.option("--url", envvar="SLUICE_URL")
def approve(release: str, gate: str | None, url: str | None) -> None:
    """Approve the manual gate a release is waiting for (recorded with your user name)."""
    try:
        data = _client(url).approve(release, gate=gate, by=_user())
    except ApiClientError as exc:
        _fail(str(exc))
        return
    console.print(data["message"])
    console.print(progress_line(data["release"]))


def _user() -> str | None:
    """Who runs the CLI, as the API accepts it (letters, digits, `_.@+ -`), for the release's record."""
    import getpass
    import re

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return None
    name = re.sub(r"[^A-Za-z0-9_.@+ -]", "", name)[:64]
    return name or None


def _context(config: str | None) -> Context:
    """A context from --config (or SLUICE_CONFIG), REDIS_URL and PROMETHEUS_URL; config errors exit 1."""
    from app.context import Context, redis_url

    try:
        cfg = load_config(config or os.environ.get("SLUICE_CONFIG", "sluice.yaml"))
        url = redis_url()
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(1)
    return Context(
        config=cfg,
        redis_url=url,
        prometheus_url=os.environ.get("PROMETHEUS_URL") or None,
    )


@main.command()
@click.option("--config", type=click.Path(dir_okay=False), help="Configuration file (default $SLUICE_CONFIG).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(config: str | None, as_json: bool) -> None:
    """Check the configuration against Redis, Prometheus, the routers and hooks; exit 0 when nothing fails."""
    import json

    from app.doctor.checks import passed, render, run_doctor

    findings = run_doctor(_context(config))
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        console.print(render(findings), highlight=False)
    sys.exit(0 if passed(findings) else 1)


@main.command()
@click.argument("release")
@click.option("--policy", help="Replay under this policy instead of the release's own.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Configuration to replay with, e.g. tuned policies (default $SLUICE_CONFIG).",
)
@click.option("--verbose", "-v", is_flag=True, help="Show every evaluation, not only decisions and differences.")
def replay(release: str, policy: str | None, config: str | None, verbose: bool) -> None:
    """Re-run a past release's evaluations on Prometheus's stored data; show where decisions differ.
    Exit 0 when the replay decides as the record did, 3 when it differs."""
    from app.analysis.replay import ReplayError, render
    from app.analysis.replay import replay as run_replay
    from app.context import UnknownService

    try:
        result = run_replay(_context(config), release, policy)
    except (ReplayError, UnknownService) as exc:
        _fail(str(exc))
        return
    console.print(render(result, verbose=verbose), highlight=False, markup=False)
    same = not result.differences and result.final.state == result.release.state
    sys.exit(0 if same else 3)


@main.command()
@click.argument("service")
@click.option("--since", default="14d", show_default=True, help="How far back: 14d, 36h, 90m.")
@click.option("--policy", help="Judge under this policy (default: the service's).")
@click.option("--compare", nargs=2, help="Two policies side by side: where they disagree.")
@click.option("--application", help="The service's application, if several have one of its name.")
@click.option("--config", type=click.Path(dir_okay=False), help="Configuration file (default $SLUICE_CONFIG).")
def backtest(
    service: str,
    since: str,
    policy: str | None,
    compare: tuple[str, str] | None,
    application: str | None,
    config: str | None,
) -> None:
    """Replay every version change of SERVICE in the period under a policy (or two): what it would have
    decided, when, on which check; false rollbacks and missed regressions where history knows the outcome."""
    from app.analysis.backtest import backtest as run_backtest
    from app.analysis.backtest import render
    from app.core.config.base import parse_duration

    try:
        seconds = parse_duration(_days(since))
        policies = list(compare) if compare else ([policy] if policy else None)
        result = run_backtest(_context(config), service, seconds, policies, application)
    except (LookupError, ValueError, StopIteration) as exc:
        _fail(str(exc) or "unknown policy")
        return
    console.print(render(result), highlight=False, markup=False, soft_wrap=True)


def _days(text: str) -> str | float:
    """`14d` -> seconds (durations elsewhere stop at hours)."""
    text = text.strip()
    if text.endswith("d") and text[:-1].replace(".", "", 1).isdigit():
        return float(text[:-1]) * 86400
    return text


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary folder (logs, configs) afterwards.")
def demo(keep: bool) -> None:
    """Run a real release locally: Redis, Prometheus, HAProxy, a demo service; good then bad version."""
    from app.cli.demo.run import run_demo

    sys.exit(run_demo(keep=keep))


def _add_token_commands() -> None:
    from app.cli.fleet import fleet
    from app.cli.tokens import token

    main.add_command(token)
    main.add_command(fleet)


_add_token_commands()

if __name__ == "__main__":
    main()
