"""Admission webhooks for Workspaces: validating (the admission rules) and mutating (defaults).

Webhook layer: ``AdmissionReview`` handling calls ``kaito.api``'s pure validation and defaulting.
"""

from __future__ import annotations

from kaito.webhooks.review import defaults_patch, mutate_review, review_response, validate_review

__all__ = ("defaults_patch", "mutate_review", "review_response", "validate_review")
