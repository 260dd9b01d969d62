"""The admission webhook server: HTTPS endpoints the API server calls with AdmissionReviews.

Webhook layer. ``/validate-workspace`` decodes the Workspace once, fetches the ConfigMaps (and,
for bring-your-own nodes, the Nodes) it refers to and runs the admission rules;
``/mutate-workspace`` applies the defaults. The server is an engine runnable that needs no lease:
every replica serves admission, the leader and the standbys alike. ``webhook_configurations``
renders the Validating/MutatingWebhookConfiguration that point the API server here.
"""

from __future__ import annotations

import base64
import json
import ssl
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import attrs
import structlog
from aiohttp import web

from kaito.api import NodeInfo, ValidationContext, referenced_config_maps
from kaito.api.v1beta1 import Workspace
from kaito.engine import ApiError, ObjectKey, ObjectList, Resource
from kaito.webhooks._review import answer_review, decode_review, mutate_review, review_response

if TYPE_CHECKING:  # the certificate arrives built; serving it needs only the ssl module
    from kaito.tls import ServingCertificate

__all__ = (
    "MUTATE_PATH",
    "VALIDATE_PATH",
    "WebhookServer",
    "webhook_configurations",
)

log = structlog.get_logger(__name__)

VALIDATE_PATH: Final = "/validate-workspace"
MUTATE_PATH: Final = "/mutate-workspace"
MAX_REVIEW_BYTES: Final = 3 * 1024 * 1024
_CONFIG_MAPS: Final = Resource("", "v1", "configmaps", "ConfigMap")
_NODES: Final = Resource("", "v1", "nodes", "Node", namespaced=False)


class _Reader(Protocol):
    async def get(self, resource: Resource, key: ObjectKey) -> dict[str, Any]: ...

    async def list(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> ObjectList: ...


@attrs.define
class WebhookServer:
    """Serves the Workspace admission webhooks over HTTPS until cancelled (a runnable)."""

    client: _Reader
    base: ValidationContext
    certificate: ServingCertificate
    host: str = "0.0.0.0"
    port: int = 9443
    bound_port: int | None = None
    #: A context to listen with instead of one made from ``certificate`` (the certificate
    #: keeper's, which switches certificates on rotation).
    ssl_context: ssl.SSLContext | None = None

    def needs_leader_election(self) -> bool:
        """Every replica serves admission, not only the leader."""
        return False

    async def context_for(self, ws: Workspace | None) -> ValidationContext:
        """The validation context with the cluster objects the decoded ``ws`` refers to."""
        if ws is None:
            return attrs.evolve(self.base, config_maps={})
        config_maps: dict[tuple[str, str], dict[str, str]] = {}
        for namespace, name in referenced_config_maps(ws, self.base):
            try:
                cm = await self.client.get(_CONFIG_MAPS, ObjectKey(namespace, name))
            except ApiError as err:
                if not err.not_found:
                    raise
                continue
            config_maps[(namespace, name)] = {k: str(v) for k, v in (cm.get("data") or {}).items()}
        nodes: tuple[NodeInfo, ...] | None = None
        if not self.base.node_auto_provisioning:
            listed = await self.client.list(_NODES)
            nodes = tuple(
                NodeInfo(
                    n["metadata"]["name"],
                    dict(n["metadata"].get("labels") or {}),
                    any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (n.get("status") or {}).get("conditions") or ()
                    ),
                )
                for n in listed.items
            )
        return attrs.evolve(self.base, config_maps=config_maps, nodes=nodes)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_REVIEW_BYTES:
            return web.json_response({"error": "review too large"}, status=413)
        try:
            review = json.loads(await request.read())
            uid = review["request"]["uid"]
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": "expected an admission.k8s.io/v1 AdmissionReview"}, status=400
            )
        try:
            if request.path == MUTATE_PATH:
                answer = mutate_review(review)
            else:
                decoded = decode_review(review)
                ws = decoded.decoded.workspace if decoded.decoded is not None else None
                answer = answer_review(decoded, await self.context_for(ws))
        except Exception as exc:  # one broken review must not take the server down
            log.exception("admission_review_failed", uid=uid)
            answer = review_response(
                uid,
                False,
                status={"code": 500, "message": f"kaito webhook error: {exc}"},
            )
        allowed = answer["response"]["allowed"]
        log.info("admission_reviewed", path=request.path, uid=uid, allowed=allowed)
        return web.json_response(answer)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; reports the bound port through ``task_status``."""
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post(VALIDATE_PATH, self._handle)
        app.router.add_post(MUTATE_PATH, self._handle)
        app.router.add_get("/healthz", _healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context = self.ssl_context or self.certificate.server_context()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=context)
        try:
            await site.start()
            self.bound_port = int(runner.addresses[0][1]) if runner.addresses else self.port
            log.info("webhook_server_started", port=self.bound_port)
            task_status.started(self.bound_port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def webhook_configurations(
    *,
    ca_pem: bytes,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    name: str = "workspace.kaito.sh",
) -> list[dict[str, Any]]:
    """The Mutating- and ValidatingWebhookConfiguration for Workspaces.

    Point them at ``url`` (``https://host:port``) or at ``service`` ``(namespace, name, port)``.
    """
    bundle = base64.b64encode(ca_pem).decode()

    def client_config(path: str) -> dict[str, Any]:
        if url is not None:
            return {"url": url.rstrip("/") + path, "caBundle": bundle}
        assert service is not None
        namespace, svc, port = service
        return {
            "service": {"namespace": namespace, "name": svc, "port": port, "path": path},
            "caBundle": bundle,
        }

    rules = [
        {
            "apiGroups": ["kaito.sh"],
            "apiVersions": ["v1alpha1", "v1beta1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["workspaces"],
            "scope": "Namespaced",
        }
    ]
    common = {
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
    }
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"defaulting.{name}"},
            "webhooks": [
                {"name": f"defaulting.{name}", "clientConfig": client_config(MUTATE_PATH),
                 "reinvocationPolicy": "Never", **common}
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": f"validation.{name}"},
            "webhooks": [
                {"name": f"validation.{name}", "clientConfig": client_config(VALIDATE_PATH),
                 **common}
            ],
        },
    ]  # fmt: skip
