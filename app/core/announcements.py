"""What a deploy notification means to Sluice: a new version to release, or a reason to ignore it.

The integrations (integrations/circleci/events.py, integrations/argo/notifications.py) turn a
sender's payload into one of these; the web receivers only answer HTTP around them, and the
intake (app/release/intake.py) starts the release.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from app.core.models import CIContext


class Announcement(BaseModel):
    """A new version of a service, deployed next to the stable one: what starts a release."""

    service: str
    version: str
    application: str | None = None
    namespace: str | None = None
    ci: CIContext = Field(default_factory=CIContext)
    trigger: str = "webhook"
    event_key: str | None = Field(None, description="The sender's event, for once-only processing.")
    mode: str | None = Field(None, description="shadow: judge without moving traffic; None: as configured.")


class Ignored(BaseModel):
    """A notification Sluice does not act on, and why (answered 202 so that the sender does not retry)."""

    reason: str


class PayloadError(ValueError):
    """The payload cannot be read (answered 400). `validation` has pydantic's field errors, if any."""

    def __init__(self, message: str, validation: ValidationError | None = None):
        super().__init__(message)
        self.validation = validation
