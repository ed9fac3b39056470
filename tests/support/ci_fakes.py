"""Local HTTP servers that speak the APIs Sluice calls when a release ends: CircleCI API v2
(workflow jobs with page-token pagination, approve, cancel, both pipeline endpoints), Slack
incoming webhooks and PagerDuty Events v2. Each records every request and can be told to answer
the next request(s) with 429 + Retry-After or 5xx, so retries are real.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes import Recorded, _Server

JSON = {"Content-Type": "application/json"}


@dataclass
class Fault:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _reply(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    if isinstance(body, bytes | str):
        raw = body.encode() if isinstance(body, str) else body
        return status, {"Content-Type": "text/plain", **(headers or {})}, raw
    return status, {**JSON, **(headers or {})}, json.dumps(body).encode()


class _Fake:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._held: threading.Event | None = None
        self._lock = threading.Lock()
        self._server = _Server(self._answer)
        self.url = self._server.url
        self.requests: list[Recorded] = self._server.requests

    def fail_next(self, *faults: Fault) -> None:
        self.faults += faults

    def hold_answers(self) -> threading.Event:
        """Keep every request waiting for its answer until the returned event is set (a call in
        flight, for killing its caller)."""
        self._held = threading.Event()
        return self._held

    def _answer(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        if self._held is not None:
            self._held.wait(10)
        with self._lock:
            if self.faults:
                f = self.faults.pop(0)
                return _reply(f.status, f.body if f.body is not None else {"message": "injected"}, f.headers)
            return self.handle(rec)

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def start(self):  # type: ignore[no-untyped-def]
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def bodies(self, path_re: str) -> list[Any]:
        return [json.loads(r.body) if r.body else None for r in self.requests if re.search(path_re, r.path)]


class FakeCircleCI(_Fake):
    """CircleCI API v2 under /api/v2. `workflows[id]` is that workflow's job list; `declared` are the
    project's pipeline parameters (an undeclared one is refused, as CircleCI fails the pipeline)."""

    PAGE_SIZE = 2

    def __init__(self, token: str, declared: set[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.base = self.url + "/api/v2"
        self.workflows: dict[str, list[dict[str, Any]]] = {}
        self.workflow_projects: dict[str, str] = {}  # workflow id -> its project's slug
        self.declared = declared if declared is not None else {"cleanup", "version"}
        self.pipelines: list[dict[str, Any]] = []  # what was triggered: {slug, body}
        self.approved: list[tuple[str, str]] = []
        self.cancelled: list[str] = []
        self.run_answers_message: str | None = None  # pipeline/run answers 200 {"message"}

    def add_workflow(
        self, workflow_id: str, jobs: list[tuple[str, str, str]], project_slug: str = "gh/acme/shop"
    ) -> None:
        """jobs: (name, type, status), e.g. ("released-by-sluice", "approval", "on_hold"); the workflow
        belongs to `project_slug` (GET /workflow/{id} says so, as CircleCI does)."""
        self.workflow_projects[workflow_id] = project_slug
        self.workflows[workflow_id] = [
            {
                "id": str(uuid.uuid4()),
                "name": name,
                "type": kind,
                "status": status,
                "job_number": None if kind == "approval" else n + 1,
                "approval_request_id": str(uuid.uuid4()) if kind == "approval" else None,
                "dependencies": [],
                "project_slug": project_slug,
            }
            for n, (name, kind, status) in enumerate(jobs)
        ]

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        if rec.headers.get("Circle-Token") != self.token:
            return _reply(401, {"message": "You must log in first."})
        path, _, query = rec.path.partition("?")
        if not path.startswith("/api/v2/"):
            return _reply(404, {"message": "Not found"})
        path = path.removeprefix("/api/v2")
        if path == "/me":
            return _reply(200, {"id": str(uuid.uuid4()), "login": "sluice-bot", "name": "Sluice"})
        if m := re.fullmatch(r"/workflow/([^/]+)", path):
            return self._workflow(m.group(1), rec.method)
        if m := re.fullmatch(r"/workflow/([^/]+)/job", path):
            if rec.method != "GET":
                return _reply(405, {"message": "Method not allowed"})
            return self._jobs(m.group(1), query)
        if m := re.fullmatch(r"/workflow/([^/]+)/approve/([^/]+)", path):
            return self._approve(m.group(1), m.group(2))
        if m := re.fullmatch(r"/workflow/([^/]+)/cancel", path):
            if m.group(1) not in self.workflows:
                return _reply(404, {"message": "Workflow not found"})
            self.cancelled.append(m.group(1))
            return _reply(202, {"message": "Accepted."})
        if m := re.fullmatch(r"/project/([^/]+/[^/]+/[^/]+)/pipeline", path):
            return self._trigger(m.group(1), rec.body, run=False)
        if m := re.fullmatch(r"/project/([^/]+/[^/]+/[^/]+)/pipeline/run", path):
            return self._trigger(m.group(1), rec.body, run=True)
        return _reply(404, {"message": "Not found"})

    def _workflow(self, workflow_id: str, method: str) -> tuple[int, dict[str, str], bytes]:
        """GET /workflow/{id}: the workflow's summary, with the slug of the project it belongs to."""
        if method != "GET":
            return _reply(405, {"message": "Method not allowed"})
        if workflow_id not in self.workflows:
            return _reply(404, {"message": "Workflow not found"})
        return _reply(
            200,
            {
                "id": workflow_id,
                "name": "release",
                "project_slug": self.workflow_projects[workflow_id],
                "pipeline_id": str(uuid.uuid5(uuid.NAMESPACE_URL, workflow_id)),
                "pipeline_number": 371,
                "status": "on_hold" if workflow_id not in self.cancelled else "canceled",
                "started_by": str(uuid.uuid4()),
                "created_at": "2026-11-26T08:01:00Z",
                "stopped_at": None,
            },
        )

    def _jobs(self, workflow_id: str, query: str) -> tuple[int, dict[str, str], bytes]:
        jobs = self.workflows.get(workflow_id)
        if jobs is None:
            return _reply(404, {"message": "Workflow not found"})
        start = 0
        for part in query.split("&"):
            if part.startswith("page-token="):
                start = int(part.split("=", 1)[1].removeprefix("tok"))
        page = jobs[start : start + self.PAGE_SIZE]
        nxt = f"tok{start + self.PAGE_SIZE}" if start + self.PAGE_SIZE < len(jobs) else None
        return _reply(200, {"items": page, "next_page_token": nxt})

    def _approve(self, workflow_id: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
        for job in self.workflows.get(workflow_id, []):
            if job["approval_request_id"] == request_id:
                if job["status"] != "on_hold":
                    return _reply(400, {"message": "Job is not on hold"})
                job["status"] = "success"
                self.approved.append((workflow_id, job["name"]))
                return _reply(202, {"message": "Accepted."})
        return _reply(404, {"message": "Approval request not found"})

    def _trigger(self, slug: str, raw: bytes, run: bool) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _reply(400, {"message": "Invalid JSON"})
        allowed = {"definition_id", "config", "checkout", "parameters"} if run else {"branch", "tag", "parameters"}
        stray = set(body) - allowed
        if stray:
            return _reply(400, {"message": f"Unexpected field(s): {', '.join(sorted(stray))}"})
        params = body.get("parameters") or {}
        undeclared = set(params) - self.declared
        if undeclared:
            return _reply(400, {"message": f"Unexpected argument(s): {', '.join(sorted(undeclared))}"})
        if run and self.run_answers_message:
            return _reply(200, {"message": self.run_answers_message})
        number = len(self.pipelines) + 100
        self.pipelines.append({"slug": slug, "body": body, "run": run})
        answer = {"id": str(uuid.uuid4()), "state": "created", "number": number, "created_at": "2026-01-01T00:00:00Z"}
        return _reply(201, answer)


class FakeSlack(_Fake):
    """A Slack incoming webhook at /services/T0/B0/<secret>: 200 `ok`, 400 `invalid_payload`,
    404 `no_service` for a wrong path."""

    SECRET_PATH = "/services/T000TEST/B000TEST/xoxb-slack-webhook-secret-1234"

    def __init__(self) -> None:
        super().__init__()
        self.webhook_url = self.url + self.SECRET_PATH
        self.messages: list[dict[str, Any]] = []

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        if rec.path != self.SECRET_PATH:
            return _reply(404, "no_service")
        try:
            body = json.loads(rec.body)
        except ValueError:
            return _reply(400, "invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return _reply(400, "invalid_payload")
        for block in body.get("blocks", []):
            if block.get("type") not in ("header", "section", "context", "actions", "divider"):
                return _reply(400, "invalid_blocks")
            text = (block.get("text") or {}).get("text", "")
            if len(text) > 3000 or len(block.get("fields", [])) > 10:
                return _reply(400, "invalid_blocks")
        self.messages.append(body)
        return _reply(200, "ok")


class FakePagerDuty(_Fake):
    """PagerDuty Events v2 at /v2/enqueue: 202 accepted, 400 for an invalid event."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        if rec.path != "/v2/enqueue":
            return _reply(404, {"status": "not found"})
        try:
            event = json.loads(rec.body)
        except ValueError:
            return _reply(400, {"status": "invalid event", "message": "Event object is invalid"})
        errors = []
        if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
            errors.append("'routing_key' is invalid")
        if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if event.get("event_action") == "trigger":
            payload = event.get("payload") or {}
            for key in ("summary", "source", "severity"):
                if not payload.get(key):
                    errors.append(f"'payload.{key}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
        elif not event.get("dedup_key"):
            errors.append("'dedup_key' is required to resolve")
        if errors:
            return _reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        self.events.append(event)
        return _reply(202, {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")})
