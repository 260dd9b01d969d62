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
from kaito.webhooks.review import defaults_patch, mutate_review, review_response, validate_review

__all__ = (
    "WEBHOOK_CONFIGURATIONS",
    "WEBHOOK_SECRET",
    "CertificatePolicy",
    "WallClock",
    "WebhookCertificates",
    "defaults_patch",
    "mutate_review",
    "review_response",
    "validate_review",
)
