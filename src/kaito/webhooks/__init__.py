"""Admission webhooks for Workspaces: validating (the admission rules) and mutating (defaults).

Webhook layer: ``AdmissionReview`` handling calls ``kaito.api``'s pure validation and defaulting.
"""

from __future__ import annotations

from kaito.webhooks._certificates import (
    WEBHOOK_CONFIGURATIONS,
    WEBHOOK_SECRET,
    CertificatePolicy,
    WallClock,
    WebhookCertificates,
)
from kaito.webhooks._review import (
    WorkspaceReview,
    answer_review,
    decode_review,
    defaults_patch,
    mutate_review,
    review_response,
    validate_review,
)
from kaito.webhooks._server import (
    MUTATE_PATH,
    VALIDATE_PATH,
    WebhookServer,
    webhook_configurations,
)

__all__ = (
    "MUTATE_PATH",
    "VALIDATE_PATH",
    "WEBHOOK_CONFIGURATIONS",
    "WEBHOOK_SECRET",
    "CertificatePolicy",
    "WallClock",
    "WebhookCertificates",
    "WebhookServer",
    "WorkspaceReview",
    "answer_review",
    "decode_review",
    "defaults_patch",
    "mutate_review",
    "review_response",
    "validate_review",
    "webhook_configurations",
)
