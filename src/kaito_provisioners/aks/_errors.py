"""ARM and Entra failures as Protocol errors: the reason, what happened, the fix, when to retry.

Provisioner layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
)

from kaito_provisioners import reasons as r
from kaito_provisioners._base import ProvisioningError
from kaito_provisioners.aks._settings import AksSettings

__all__ = ("arm_code", "classify", "pool_failure")

MAX_MESSAGE: Final = 480
_CAPACITY_CODES: Final = frozenset(
    {
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "SkuNotAvailable",
    }
)
_SKU_CODES: Final = frozenset({"SkuNotAvailable", "VMSizeNotSupported", "InvalidVMSize"})
_NOT_FOUND_CODES: Final = frozenset(
    {"ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound", "ParentResourceNotFound"}
)
_API_VERSION_CODES: Final = frozenset(
    {"NoRegisteredProviderFound", "InvalidApiVersionParameter", "InvalidResourceType"}
)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def arm_code(err: HttpResponseError) -> tuple[str, str]:
    """ARM's ``error.code`` and ``error.message`` of a failed response."""
    detail: Any = getattr(err, "error", None)
    code = str(getattr(detail, "code", "") or "")
    message = str(getattr(detail, "message", "") or "")
    if not code:
        model: Any = getattr(err, "model", None)
        inner = getattr(model, "error", None)
        code = str(getattr(inner, "code", "") or "")
        message = message or str(getattr(inner, "message", "") or "")
    return code, message or str(err.message or err.reason or "")


def _retry_after(err: HttpResponseError, default: float) -> float:
    headers: Mapping[str, str] = getattr(err.response, "headers", None) or {}
    for name in ("Retry-After", "retry-after", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            return seconds / 1000 if name.endswith("-ms") else seconds
    return default


def classify(err: AzureError, action: str, settings: AksSettings) -> ProvisioningError:
    """``action`` (e.g. ``create agent pool ws1a2b3c4d5``) failed with ``err``."""
    if isinstance(err, ClientAuthenticationError) and (
        err.status_code is None or err.status_code != 403
    ):
        return ProvisioningError(
            r.AUTHENTICATION_FAILED,
            f"cannot {action}: Azure authentication failed: {_short(err.message)}",
            fix=r.FIXES[r.AUTHENTICATION_FAILED],
            cause="AuthenticationFailed",
            retry_after=settings.human_retry,
            retryable=False,
        )
    if isinstance(err, ServiceRequestError):
        return ProvisioningError(
            r.PROVIDER_UNREACHABLE,
            f"cannot {action}: ARM is unreachable: {_short(str(err))}",
            fix=r.FIXES[r.PROVIDER_UNREACHABLE],
            retry_after=settings.conflict_retry,
        )
    if not isinstance(err, HttpResponseError):
        return ProvisioningError(
            r.PROVIDER_ERROR,
            f"cannot {action}: {_short(str(err))}",
            fix=r.FIXES[r.PROVIDER_ERROR],
            retry_after=settings.conflict_retry,
        )
    code, message = arm_code(err)
    status = err.status_code or 0
    said = f"cannot {action}: ARM answered {status} {code}: {_short(message)}"
    if status == 429:
        wait = _retry_after(err, settings.throttle_retry)
        return ProvisioningError(
            r.THROTTLED,
            f"{said} (retrying in {wait:g}s)",
            fix=r.FIXES[r.THROTTLED],
            cause=code,
            retry_after=wait,
        )
    reason, retry, retryable = _reason_of(code, message, status, settings)
    return ProvisioningError(
        reason, said, fix=r.FIXES[reason], cause=code, retry_after=retry, retryable=retryable
    )


def _reason_of(
    code: str, message: str, status: int, settings: AksSettings
) -> tuple[str, float, bool]:
    if code == "QuotaExceeded" or "exceeding approved" in message:
        return r.QUOTA_EXCEEDED, settings.human_retry, False
    if code in _SKU_CODES:
        return r.SKU_NOT_AVAILABLE, settings.human_retry, False
    if code in _CAPACITY_CODES:
        return r.INSUFFICIENT_CAPACITY, settings.failed_pool_retry, True
    if status == 401:
        return r.AUTHENTICATION_FAILED, settings.human_retry, False
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return r.AUTHORIZATION_FAILED, settings.human_retry, False
    if code in _NOT_FOUND_CODES:
        return r.CLUSTER_NOT_FOUND, settings.human_retry, False
    if code in _API_VERSION_CODES:
        return r.UNSUPPORTED_API_VERSION, settings.human_retry, False
    if status == 409 or code == "OperationNotAllowed":
        return r.OPERATION_IN_PROGRESS, settings.conflict_retry, True
    return r.PROVIDER_ERROR, settings.conflict_retry, True


def pool_failure(
    name: str, error: Mapping[str, Any] | None, settings: AksSettings
) -> ProvisioningError:
    """A pool in ``Failed``: its ``status.provisioningError`` as a Protocol error."""
    code = str((error or {}).get("code") or "Unknown")
    message = _short(str((error or {}).get("message") or "no provisioning error was reported"))
    said = f"agent pool {name} failed: {code}: {message}"
    if code == "QuotaExceeded":
        return ProvisioningError(
            r.QUOTA_EXCEEDED,
            said,
            fix=r.FIXES[r.QUOTA_EXCEEDED],
            cause=code,
            retry_after=settings.human_retry,
            retryable=False,
        )
    if code in _CAPACITY_CODES:
        return ProvisioningError(
            r.INSUFFICIENT_CAPACITY,
            said,
            fix=r.FIXES[r.INSUFFICIENT_CAPACITY],
            cause=code,
            retry_after=settings.failed_pool_retry,
        )
    return ProvisioningError(
        r.AGENT_POOL_FAILED,
        said,
        fix=r.FIXES[r.AGENT_POOL_FAILED],
        cause=code,
        retry_after=settings.failed_pool_retry,
    )
