"""The `sluice` command."""

from __future__ import annotations

import os
import sys

import click

from app.client import ApiClientError, SluiceClient
from app.config import ConfigError, json_schema, load_config
from app.report import EXIT_FOR_STATE, WIDTH, checks_table, clock, console, err, follow, progress_line

__all__ = ["EXIT_FOR_STATE", "WIDTH", "follow", "main"]


def _client(url: str | None) -> SluiceClient:
    return SluiceClient(url)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/] {message}")
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from app.config.kinds import all_kinds

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
    serving = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "serving.py")
    args = [sys.executable, "-m", "gunicorn", "-c", serving, "--bind", bind, "--workers", str(workers)]
    args.append("app:create_app()")
    os.execv(sys.executable, args)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (for tests).")
def worker(burst: bool) -> None:
    """Run an RQ worker for release ticks and hook deliveries (with a standby scheduler)."""
    from app.logs import configure_logging
    from workers.worker import run_worker

    configure_logging()
    run_worker(burst=burst)


@main.command()
def watcher() -> None:
    """Watch Kubernetes Deployments and start releases of new versions (one leader, others stand by)."""
    from app.logs import configure_logging
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
            f"started {clock(r['created_at'])}"
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


_steer_command("pause", "Hold a release at its current step.")
_steer_command("resume", "Resume a paused release.")
_steer_command("promote", "Send all traffic to the candidate now and mark it stable.")
_steer_command("abort", "Put all traffic back on the stable version now.")


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary folder (logs, configs) afterwards.")
def demo(keep: bool) -> None:
    """Run a real release locally: Redis, Prometheus, HAProxy, a demo service; good then bad version."""
    from app.demo.run import run_demo

    sys.exit(run_demo(keep=keep))


if __name__ == "__main__":
    main()
