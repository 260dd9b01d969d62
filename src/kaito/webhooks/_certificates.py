"""The admission webhooks' TLS, looked after by the manager itself (no cert-manager needed).

Webhook layer. One Secret in the release namespace (``workspace-webhook-cert``, as upstream names
it) holds ``ca.crt`` (the CA bundle the API server trusts: the current CA first, then earlier ones
until they expire), ``ca.key``, ``tls.crt`` and ``tls.key``. Every replica runs a
:class:`WebhookCertificates` (a runnable that needs no lease):

- it **adopts** what the Secret holds while it is valid, so a restarted or second replica serves
  the same certificate and writes nothing;
- it **generates or renews** otherwise: the serving certificate once less than a third of its
  life is left, the CA likewise (the new CA joins the bundle, the old one stays until it
  expires), and writes the Secret with its ``resourceVersion``, so of two replicas renewing at
  once one wins and the other adopts the winner's;
- it makes every webhook configuration's ``caBundle`` the Secret's bundle **before** it serves a
  new certificate, so the API server trusts every certificate any replica serves;
- it reads the Secret again every ``recheck`` seconds (and when a renewal is due) to pick up
  other replicas' rotations, and swaps the served certificate without a restart.

Time comes from an injected clock whose ``now()`` is Unix time, so tests expire certificates
on a :class:`~kaito.engine.FakeClock`. Key material is never logged.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import attrs
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.registry import Collector

from kaito.engine import ApiError, ObjectKey, Resource
from kaito.tls import (
    CertificateAuthority,
    ServingCertificate,
    certificate_info,
    generate_certificate_authority,
    generate_serving_certificate,
    issued_by,
    load_server_certificate,
    split_pem_bundle,
)
from kaito.webhooks._server import webhook_configurations

__all__ = (
    "WEBHOOK_CONFIGURATIONS",
    "WEBHOOK_SECRET",
    "CertificatePolicy",
    "WallClock",
    "WebhookCertificates",
)

log = structlog.get_logger(__name__)

#: Upstream's name of the Secret with the webhook certificate.
WEBHOOK_SECRET: Final = "workspace-webhook-cert"
#: The webhook configurations whose ``caBundle`` the manager keeps: (kind, name).
WEBHOOK_CONFIGURATIONS: Final = (
    ("MutatingWebhookConfiguration", "defaulting.workspace.kaito.sh"),
    ("ValidatingWebhookConfiguration", "validation.workspace.kaito.sh"),
)
_SECRETS: Final = Resource("", "v1", "secrets", "Secret")
_ATTEMPTS: Final = 5


def _configurations_resource(kind: str) -> Resource:
    return Resource(
        "admissionregistration.k8s.io", "v1", kind.lower() + "s", kind, namespaced=False
    )


class _Client(Protocol):
    async def get(self, resource: Resource, key: ObjectKey) -> dict[str, Any]: ...

    async def create(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def replace(
        self, resource: Resource, obj: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]: ...


class _Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    """Unix time and anyio's sleep (certificates are about calendar time)."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


@attrs.frozen
class CertificatePolicy:
    """How long certificates live, when they are renewed, how often the Secret is read."""

    ca_validity: dt.timedelta = dt.timedelta(days=365)
    validity: dt.timedelta = dt.timedelta(days=90)
    #: Renew once less than this share of a certificate's lifetime is left.
    renew_fraction: float = 1 / 3
    #: Seconds between reads of the Secret (other replicas' rotations).
    recheck: float = 600.0
    #: Seconds before trying again after the API server refused or failed.
    retry: float = 30.0

    def renew_at(self, not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
        """When a certificate valid from ``not_before`` to ``not_after`` is due for renewal."""
        return not_after - (not_after - not_before) * self.renew_fraction


@attrs.frozen
class _Keys:
    """What the Secret holds (each part None when missing or unreadable)."""

    bundle: tuple[bytes, ...]
    ca: CertificateAuthority | None
    serving: ServingCertificate | None


@attrs.frozen
class _Plan:
    bundle: tuple[bytes, ...]
    serving: ServingCertificate
    #: Why the Secret must be written (None: adopt it as it is).
    reason: str | None


def _decode(secret: Mapping[str, Any] | None) -> _Keys:
    data = (secret or {}).get("data") or {}
    raw: dict[str, bytes] = {}
    for key in ("ca.crt", "ca.key", "tls.crt", "tls.key"):
        try:
            raw[key] = base64.b64decode(str(data.get(key) or ""), validate=True)
        except ValueError:
            raw[key] = b""
    bundle = tuple(split_pem_bundle(raw["ca.crt"]))
    ca = CertificateAuthority(bundle[0], raw["ca.key"]) if bundle and raw["ca.key"] else None
    serving = None
    if ca is not None and raw["tls.crt"] and raw["tls.key"]:
        serving = ServingCertificate(ca, raw["tls.crt"], raw["tls.key"])
    return _Keys(bundle, ca, serving)


class WebhookCertificates:
    """Keeps the webhook serving certificate, its CA, the Secret and the caBundles (a runnable).

    :attr:`context` is the SSL context the webhook server listens with; it serves the current
    certificate from the first :meth:`sync` on and switches on every rotation.
    """

    def __init__(
        self,
        client: _Client,
        *,
        namespace: str,
        service: str,
        service_namespace: str | None = None,
        service_port: int = 443,
        secret: str = WEBHOOK_SECRET,
        configurations: Sequence[tuple[str, str]] = WEBHOOK_CONFIGURATIONS,
        create_configurations: bool = True,
        extra_hosts: Sequence[str] = (),
        policy: CertificatePolicy | None = None,
        clock: _Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``registry`` gets its metrics now (None: register :attr:`metrics` later, or not)."""
        self.client = client
        self.namespace = namespace
        self.service = service
        self.service_namespace = service_namespace or namespace
        self.service_port = service_port
        self.secret = ObjectKey(namespace, secret)
        self.configurations = tuple(configurations)
        self.create_configurations = create_configurations
        #: The names the serving certificate is for (the API server checks ``<svc>.<ns>.svc``).
        self.hosts = (
            f"{service}.{self.service_namespace}.svc",
            f"{service}.{self.service_namespace}.svc.cluster.local",
            *extra_hosts,
        )
        self.policy = policy or CertificatePolicy()
        self.clock: _Clock = clock or WallClock()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.certificate: ServingCertificate | None = None
        self.bundle: bytes = b""
        self._expiry = Gauge(
            "kaito_webhook_certificate_expiration_timestamp_seconds",
            "When the webhook serving certificate this replica serves expires (Unix time).",
            registry=registry,
        )
        self._rotations = Counter(
            "kaito_webhook_certificate_rotations",
            "Certificates this replica generated and stored, by reason.",
            ["reason"],
            registry=registry,
        )
        #: Its Prometheus metrics, for a registry that did not get them at construction.
        self.metrics: tuple[Collector, ...] = (self._expiry, self._rotations)

    def needs_leader_election(self) -> bool:
        """Every replica serves admission, so every replica keeps its certificate."""
        return False

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)

    # -- deciding -------------------------------------------------------------------------

    def _ca_usable(self, ca: CertificateAuthority | None, now: dt.datetime) -> bool:
        if ca is None:
            return False
        try:
            info = certificate_info(ca.cert_pem)
        except ValueError:
            return False
        return info.is_ca and info.not_before <= now < self.policy.renew_at(
            info.not_before, info.not_after
        )

    def _serving_usable(self, keys: _Keys, now: dt.datetime) -> bool:
        if keys.serving is None or keys.ca is None:
            return False
        try:
            info = certificate_info(keys.serving.cert_pem)
        except ValueError:
            return False
        return (
            set(self.hosts) <= set(info.hosts)
            and issued_by(keys.serving.cert_pem, keys.ca.cert_pem)
            and info.not_before <= now < self.policy.renew_at(info.not_before, info.not_after)
        )

    def _plan(self, keys: _Keys, now: dt.datetime) -> _Plan:
        def unexpired(pems: Sequence[bytes]) -> tuple[bytes, ...]:
            kept = []
            for pem in pems:
                try:
                    if certificate_info(pem).not_after > now:
                        kept.append(pem)
                except ValueError:
                    continue
            return tuple(kept)

        if not self._ca_usable(keys.ca, now):
            reason = "ca_missing" if keys.ca is None else "ca_renewal"
            ca = generate_certificate_authority(
                common_name=f"{self.service}.{self.service_namespace}-ca",
                validity=self.policy.ca_validity,
                now=now,
            )
            serving = generate_serving_certificate(
                self.hosts, ca=ca, validity=self.policy.validity, now=now
            )
            return _Plan((ca.cert_pem, *unexpired(keys.bundle)), serving, reason)
        assert keys.ca is not None
        bundle = unexpired(keys.bundle)
        if not self._serving_usable(keys, now):
            reason = "missing" if keys.serving is None else "renewal"
            serving = generate_serving_certificate(
                self.hosts, ca=keys.ca, validity=self.policy.validity, now=now
            )
            return _Plan(bundle, serving, reason)
        assert keys.serving is not None
        return _Plan(bundle, keys.serving, None if bundle == keys.bundle else "bundle_pruned")

    # -- writing --------------------------------------------------------------------------

    async def _read_secret(self) -> dict[str, Any] | None:
        try:
            return await self.client.get(_SECRETS, self.secret)
        except ApiError as err:
            if err.not_found:
                return None
            raise

    async def _store(self, secret: dict[str, Any] | None, plan: _Plan) -> bool:
        """Write the plan into the Secret; False when another writer came first."""
        assert plan.serving.ca.key_pem
        data = {
            "ca.crt": b"".join(plan.bundle),
            "ca.key": plan.serving.ca.key_pem,
            "tls.crt": plan.serving.cert_pem,
            "tls.key": plan.serving.key_pem,
        }
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        try:
            if secret is None:
                await self.client.create(
                    _SECRETS,
                    {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": self.secret.name, "namespace": self.namespace,
                                  "labels": {"app.kubernetes.io/name": "kaito-workspace"}},
                     "data": encoded},
                )  # fmt: skip
            else:
                updated = {k: v for k, v in secret.items() if k != "stringData"}
                await self.client.replace(_SECRETS, {**updated, "data": encoded})
        except ApiError as err:
            if err.conflict:
                return False
            raise
        return True

    async def _ensure_configurations(self, bundle: bytes) -> None:
        encoded = base64.b64encode(bundle).decode()
        for kind, name in self.configurations:
            resource = _configurations_resource(kind)
            for _ in range(_ATTEMPTS):
                try:
                    config = await self.client.get(resource, ObjectKey("", name))
                except ApiError as err:
                    if not err.not_found:
                        raise
                    if await self._create_configuration(kind, name, bundle):
                        break
                    continue
                hooks = config.get("webhooks") or []
                if all((h.get("clientConfig") or {}).get("caBundle") == encoded for h in hooks):
                    break
                for hook in hooks:
                    hook.setdefault("clientConfig", {})["caBundle"] = encoded
                try:
                    await self.client.replace(resource, config)
                except ApiError as err:
                    if err.conflict:
                        continue  # someone else wrote it meanwhile: look again
                    raise
                log.info("webhook_ca_bundle_patched", kind=kind, name=name)
                break
            else:
                raise RuntimeError(
                    f"{kind} {name}: caBundle not written after {_ATTEMPTS} conflicting writes"
                )

    async def _create_configuration(self, kind: str, name: str, bundle: bytes) -> bool:
        """Create a missing configuration (a manager run without deploy/); False on a race."""
        if not self.create_configurations:
            log.warning("webhook_configuration_missing", kind=kind, name=name)
            return True
        rendered = webhook_configurations(
            ca_pem=bundle, service=(self.service_namespace, self.service, self.service_port)
        )
        (config,) = [c for c in rendered if c["kind"] == kind]
        config["metadata"]["name"] = name
        try:
            await self.client.create(_configurations_resource(kind), config)
        except ApiError as err:
            if err.conflict:
                return False
            raise
        log.info("webhook_configuration_created", kind=kind, name=name)
        return True

    def _serve(self, serving: ServingCertificate) -> None:
        if serving == self.certificate:
            return
        load_server_certificate(self.context, serving)
        previous, self.certificate = self.certificate, serving
        info = certificate_info(serving.cert_pem)
        self._expiry.set(info.not_after.timestamp())
        log.info(
            "webhook_certificate_serving",
            serial=f"{info.serial:x}",
            not_after=info.not_after.isoformat(),
            replaced=previous is not None,
        )

    # -- the loop -------------------------------------------------------------------------

    async def sync(self) -> ServingCertificate:
        """Adopt, create or renew the certificate; patch the caBundles; serve it. Idempotent.

        Raises:
            ApiError: the API server refused (a missing RBAC rule names itself here).
        """
        for _ in range(_ATTEMPTS):
            secret = await self._read_secret()
            now = self._now()
            plan = self._plan(_decode(secret), now)
            if plan.reason is not None:
                if not await self._store(secret, plan):
                    log.info("webhook_certificate_conflict", secret=self.secret.name)
                    continue  # another replica wrote it first: adopt theirs
                self._rotations.labels(plan.reason).inc()
                info = certificate_info(plan.serving.cert_pem)
                log.info(
                    "webhook_certificate_stored",
                    secret=self.secret.name,
                    reason=plan.reason,
                    serial=f"{info.serial:x}",
                    not_after=info.not_after.isoformat(),
                )
            self.bundle = b"".join(plan.bundle)
            await self._ensure_configurations(self.bundle)
            self._serve(plan.serving)
            return plan.serving
        raise RuntimeError(
            f"secret {self.secret.name}: {_ATTEMPTS} conflicting writes in a row; is another "
            "writer fighting over it?"
        )

    def next_check(self) -> float:
        """Seconds until the Secret should be read again (a renewal due, or ``recheck``)."""
        wait = self.policy.recheck
        if self.certificate is not None:
            now = self._now()
            for pem in (self.certificate.cert_pem, self.certificate.ca.cert_pem):
                info = certificate_info(pem)
                due = self.policy.renew_at(info.not_before, info.not_after)
                wait = min(wait, (due - now).total_seconds())
        return max(wait, 1.0)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Sync, report started (the server may listen now), then keep syncing until cancelled.

        A failure at start is raised (the manager cannot serve admission without a
        certificate); later failures are logged and retried after ``policy.retry`` seconds,
        while the current certificate keeps being served.
        """
        await self.sync()
        task_status.started()
        wait = self.next_check()
        while True:
            await self.clock.sleep(wait)
            try:
                await self.sync()
            except Exception as err:  # keep serving; the next pass tries again
                log.warning("webhook_certificate_sync_failed", error=str(err))
                wait = self.policy.retry
            else:
                wait = self.next_check()
