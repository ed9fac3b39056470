"""CircleCI API v2, the calls Sluice makes when a release ends: approve the held approval job,
trigger a (parameterised) pipeline, cancel a workflow.

Every function makes its call(s) with a timeout and returns one Outcome: the delivery worker
retries 429 (after Retry-After), 5xx and network errors with backoff, and records other 4xx
with CircleCI's `{"message"}` without retrying.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from integrations.notify.http import call, failed
from integrations.notify.webhook import Outcome

DEFAULT_API_URL = "https://circleci.com/api/v2"
MAX_JOB_PAGES = 20


class CircleCI:
    def __init__(self, token: str, base_url: str = DEFAULT_API_URL, timeout: float = 10.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Circle-Token": token}
        self.session = requests.Session()

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> tuple[Outcome, requests.Response | None]:
        return call(
            method,
            self.base + path,
            timeout=self.timeout,
            headers=self.headers,
            body=body,
            params=params,
            session=self.session,
        )

    # --- whose workflow --------------------------------------------------------------------------

    def workflow_project(self, workflow_id: str) -> tuple[Outcome, str | None]:
        """GET /workflow/{id}: the slug of the project the workflow belongs to, as CircleCI says."""
        outcome, resp = self._call("GET", f"/workflow/{quote(workflow_id, safe='')}")
        if not outcome.ok or resp is None:
            return outcome, None
        try:
            slug = resp.json().get("project_slug")
        except (ValueError, AttributeError):
            slug = None
        if not isinstance(slug, str) or not slug:
            return failed("CircleCI's answer about the workflow names no project_slug", resp.status_code), None
        return outcome, slug

    # --- approve ---------------------------------------------------------------------------------

    def workflow_jobs(self, workflow_id: str) -> tuple[Outcome, list[dict[str, Any]]]:
        """All jobs of a workflow, following `next_page_token` (bounded)."""
        jobs: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_JOB_PAGES):
            outcome, resp = self._call(
                "GET", f"/workflow/{quote(workflow_id, safe='')}/job", params={"page-token": token} if token else None
            )
            if not outcome.ok or resp is None:
                return outcome, jobs
            try:
                data = resp.json()
                jobs += list(data.get("items") or [])
                token = data.get("next_page_token") or None
            except (ValueError, AttributeError, TypeError):
                return failed("CircleCI answered the job list with something that is not JSON", resp.status_code), jobs
            if not token:
                return outcome, jobs
        # Not "no approval job on hold": we never saw the end of the list.
        return failed(f"the workflow's job list did not end after {MAX_JOB_PAGES} pages", outcome.status), jobs

    def approve(self, workflow_id: str, job_name: str | None = None) -> Outcome:
        if not workflow_id:
            return failed("the release has no CircleCI workflow id (announce deploys with ci.workflow_id)")
        outcome, jobs = self.workflow_jobs(workflow_id)
        if not outcome.ok:
            return outcome
        approvals = [j for j in jobs if j.get("type") == "approval" and (job_name is None or j.get("name") == job_name)]
        held = [j for j in approvals if j.get("status") == "on_hold"]
        if not held:
            done = [j for j in approvals if j.get("status") == "success"]
            if done:  # e.g. our earlier attempt approved it, but its worker died before recording that
                outcome.excerpt = f"already approved: {', '.join(str(j.get('name')) for j in done)}"[:300]
                return outcome
            seen = ", ".join(f"{j.get('name')} ({j.get('type')}, {j.get('status')})" for j in jobs[:10]) or "none"
            which = f"approval job {job_name!r}" if job_name else "approval job"
            return failed(f"no {which} is on hold in workflow {workflow_id}; jobs: {seen}", outcome.status)
        job = held[0]
        request_id = job.get("approval_request_id") or job.get("id")
        outcome, _ = self._call(
            "POST", f"/workflow/{quote(workflow_id, safe='')}/approve/{quote(str(request_id), safe='')}"
        )
        if outcome.ok:
            outcome.excerpt = f"approved {job.get('name')!r} ({request_id}): {outcome.excerpt}"[:300]
        return outcome

    # --- cancel ----------------------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str) -> Outcome:
        if not workflow_id:
            return failed("the release has no CircleCI workflow id (announce deploys with ci.workflow_id)")
        outcome, _ = self._call("POST", f"/workflow/{quote(workflow_id, safe='')}/cancel")
        return outcome

    # --- trigger ---------------------------------------------------------------------------------

    def trigger_pipeline(
        self,
        project_slug: str,
        parameters: dict[str, Any],
        branch: str | None = None,
        tag: str | None = None,
        definition_id: str | None = None,
    ) -> Outcome:
        problem = check_parameters(parameters)
        if problem:
            return failed(problem)
        parts = project_slug.split("/")
        if len(parts) != 3 or not all(parts):
            return failed(
                f"project slug {project_slug!r} is not <vcs>/<org>/<project>: set `project_slug` on the hook "
                "or announce deploys with ci.project_slug"
            )
        path = "/project/" + "/".join(quote(p, safe="") for p in parts)
        body: dict[str, Any]
        if definition_id:
            ref = {"tag": tag} if tag else {"branch": branch}
            body = {"definition_id": definition_id, "config": ref, "checkout": ref}
            if parameters:
                body["parameters"] = parameters
            outcome, resp = self._call("POST", path + "/pipeline/run", body=body)
        else:
            body = {"tag": tag} if tag else ({"branch": branch} if branch else {})
            if parameters:
                body["parameters"] = parameters
            outcome, resp = self._call("POST", path + "/pipeline", body=body)
        if outcome.ok and resp is not None:
            return _created(outcome, resp)
        return outcome


def _created(outcome: Outcome, resp: requests.Response) -> Outcome:
    """201 {id, number, state}: created. A 200 with only a message created nothing: not a success."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and (data.get("id") or data.get("number") is not None):
        return outcome
    message = data.get("message") if isinstance(data, dict) else None
    return failed(
        f"CircleCI created no pipeline: {message or 'no pipeline id in the answer'}", resp.status_code, outcome.excerpt
    )


def check_parameters(parameters: dict[str, Any]) -> str | None:
    """CircleCI's limits: at most 100 parameters, names <= 128 characters, values <= 512."""
    if len(parameters) > 100:
        return f"{len(parameters)} pipeline parameters; CircleCI accepts at most 100"
    for key, value in parameters.items():
        if len(key) > 128:
            return f"pipeline parameter name {key[:40]!r}... is longer than 128 characters"
        if not isinstance(value, str | int | bool | float):
            return f"pipeline parameter {key!r} must be a string, number or boolean"
        if isinstance(value, str) and len(value) > 512:
            return f"pipeline parameter {key!r} is {len(value)} characters long; CircleCI accepts at most 512"
    return None
