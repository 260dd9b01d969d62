"""Authentication and authorisation of the in-process API server, as kube-apiserver does them:
client certificates, the admin token and ServiceAccount JWTs (TokenRequest), impersonation, the
RBAC authoriser with its bootstrap roles and ClusterRole aggregation, and the review APIs."""

from kaito.cluster._auth._access import AUTHORIZATION_MODES, REVIEW_RESOURCES, AccessControl
from kaito.cluster._auth._aggregation import ClusterRoleAggregator
from kaito.cluster._auth._bootstrap import bootstrap_policy
from kaito.cluster._auth._certificates import (
    ClientCertificate,
    issue_client_certificate,
    server_context,
    user_from_peercert,
)
from kaito.cluster._auth._escalation import EscalationGuard, covers, uncovered
from kaito.cluster._auth._ownerrefs import OWNER_REFERENCES_PLUGIN, OwnerReferencesGuard
from kaito.cluster._auth._rbac import (
    AlwaysAllow,
    Attributes,
    Authorizer,
    Decision,
    PolicyRule,
    RbacAuthorizer,
    RulesReview,
    aggregated_rules,
    forbidden_message,
    rule_allows,
)
from kaito.cluster._auth._tokens import (
    ISSUER,
    POD_TOKEN_EXPIRATION_SECONDS,
    BoundObject,
    IssuedToken,
    ServiceAccountTokens,
)
from kaito.cluster._auth._user import (
    ADMIN,
    ANONYMOUS,
    LOOPBACK_ADMIN,
    UserInfo,
    service_account_user,
    split_service_account,
)

__all__ = (
    "ADMIN",
    "ANONYMOUS",
    "AUTHORIZATION_MODES",
    "ISSUER",
    "LOOPBACK_ADMIN",
    "OWNER_REFERENCES_PLUGIN",
    "POD_TOKEN_EXPIRATION_SECONDS",
    "REVIEW_RESOURCES",
    "AccessControl",
    "AlwaysAllow",
    "Attributes",
    "Authorizer",
    "BoundObject",
    "ClientCertificate",
    "ClusterRoleAggregator",
    "Decision",
    "EscalationGuard",
    "IssuedToken",
    "OwnerReferencesGuard",
    "PolicyRule",
    "RbacAuthorizer",
    "RulesReview",
    "ServiceAccountTokens",
    "UserInfo",
    "aggregated_rules",
    "bootstrap_policy",
    "covers",
    "forbidden_message",
    "issue_client_certificate",
    "rule_allows",
    "server_context",
    "service_account_user",
    "split_service_account",
    "uncovered",
    "user_from_peercert",
)
