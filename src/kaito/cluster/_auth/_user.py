"""Who is asking: the authenticated user, and the well-known names kube-apiserver gives users."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = (
    "ADMIN",
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS",
    "LOOPBACK_ADMIN",
    "MASTERS",
    "SERVICE_ACCOUNT_PREFIX",
    "UserInfo",
    "service_account_groups",
    "service_account_user",
    "split_service_account",
)

MASTERS = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@attrs.frozen
class UserInfo:
    """An authenticated (or anonymous) user, as ``user.Info`` in kube-apiserver."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, object]:
        """The ``authentication.k8s.io/v1`` ``UserInfo`` form."""
        out: dict[str, object] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo("system:anonymous", groups=(ALL_UNAUTHENTICATED,))
ADMIN = UserInfo("kaito-admin", groups=(MASTERS, ALL_AUTHENTICATED))
"""The owner of a local cluster (its kubeconfig's credentials)."""
LOOPBACK_ADMIN = UserInfo("system:admin", groups=(MASTERS, ALL_AUTHENTICATED))
"""Requests without credentials when authentication is off, and in-process clients."""


def service_account_user(namespace: str, name: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a ServiceAccount user name, ``None`` for other users."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not namespace or not name or ":" in name:
        return None
    return namespace, name


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups of every ServiceAccount of ``namespace``."""
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", ALL_AUTHENTICATED)
