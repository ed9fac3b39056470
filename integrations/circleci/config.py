"""Which CircleCI job or workflow deploys which service (the `circleci:` section)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from app.core.config.base import LabelValue, Name, Strict
from integrations.circleci.events import canonical_slug, check_version_template


class CircleCIDeploy(Strict):
    """A CircleCI job (job-completed) or workflow (workflow-completed) whose success deploys a service."""

    job: str | None = Field(None, min_length=1, max_length=128, description="The deploy job's name.")
    workflow: str | None = Field(None, min_length=1, max_length=128, description="...or the workflow's name.")
    service: LabelValue
    application: Name | None = None
    version: str = Field(
        min_length=1,
        max_length=128,
        description="Version template, e.g. '1.0.{pipeline.number}' or '{pipeline.vcs.revision_short}'.",
    )

    @field_validator("version")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        return check_version_template(template)

    @model_validator(mode="after")
    def _job_or_workflow(self) -> CircleCIDeploy:
        if bool(self.job) == bool(self.workflow):
            raise ValueError("name exactly one of `job` (job-completed) or `workflow` (workflow-completed)")
        return self


class CircleCIProject(Strict):
    slug: str = Field(
        pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$",
        description="The project slug, e.g. gh/acme/shop (github/acme/shop is the same project) or "
        "circleci/<org-id>/<project-id> for GitHub App projects.",
    )
    deploys: list[CircleCIDeploy] = Field(min_length=1)


class CircleCIConfig(Strict):
    api_url: str = Field(
        "https://circleci.com/api/v2", pattern=r"^https?://", description="API v2 base (env CIRCLECI_API_URL wins)."
    )
    projects: list[CircleCIProject] = Field(default_factory=list)

    def deploy_for(self, slug: str, job: str | None, workflow: str | None) -> CircleCIDeploy | None:
        wanted = canonical_slug(slug)  # gh/ and github/, bb/ and bitbucket/ are one project
        for project in self.projects:
            if canonical_slug(project.slug) != wanted:
                continue
            for d in project.deploys:
                if (job is not None and d.job == job) or (workflow is not None and d.workflow == workflow):
                    return d
        return None

    def names_a_deploy(self, job: str | None, workflow: str | None) -> bool:
        """Whether some project's deploy has this job (or workflow) name."""
        return any(
            (job is not None and d.job == job) or (workflow is not None and d.workflow == workflow)
            for p in self.projects
            for d in p.deploys
        )
