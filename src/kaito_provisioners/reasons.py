"""The reasons provisioning problems carry on a Workspace's conditions, and what fixes each.

Provisioner layer. Backends raise or report :class:`~kaito_provisioners.ProvisioningError` with
one of these reasons; ``docs/provisioners.md`` explains each (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = (
    "AGENT_POOL_FAILED",
    "AUTHENTICATION_FAILED",
    "AUTHORIZATION_FAILED",
    "CLUSTER_NOT_FOUND",
    "FIXES",
    "INSUFFICIENT_CAPACITY",
    "LAUNCH_FAILED",
    "NODES_DELETING",
    "NODE_CLAIM_NOT_READY",
    "NODE_NOT_READY",
    "NODE_NOT_REGISTERED",
    "NODE_PLUGINS_NOT_READY",
    "OPERATION_IN_PROGRESS",
    "PROVIDER_ERROR",
    "PROVIDER_UNREACHABLE",
    "PROVISIONING_TIMEOUT",
    "QUOTA_EXCEEDED",
    "SKU_NOT_AVAILABLE",
    "THROTTLED",
    "UNSUPPORTED_API_VERSION",
)

QUOTA_EXCEEDED: Final = "QuotaExceeded"
SKU_NOT_AVAILABLE: Final = "SKUNotAvailable"
INSUFFICIENT_CAPACITY: Final = "InsufficientCapacity"
THROTTLED: Final = "Throttled"
OPERATION_IN_PROGRESS: Final = "OperationInProgress"
AGENT_POOL_FAILED: Final = "AgentPoolFailed"
LAUNCH_FAILED: Final = "LaunchFailed"
AUTHENTICATION_FAILED: Final = "AzureAuthenticationFailed"
AUTHORIZATION_FAILED: Final = "AzureAuthorizationFailed"
CLUSTER_NOT_FOUND: Final = "ClusterNotFound"
UNSUPPORTED_API_VERSION: Final = "UnsupportedAPIVersion"
PROVIDER_UNREACHABLE: Final = "ProviderUnreachable"
PROVIDER_ERROR: Final = "ProviderError"
PROVISIONING_TIMEOUT: Final = "ProvisioningTimeout"
NODE_NOT_REGISTERED: Final = "NodeNotRegistered"
NODE_CLAIM_NOT_READY: Final = "NodeClaimNotReady"
NODE_NOT_READY: Final = "NodeNotReady"
NODE_PLUGINS_NOT_READY: Final = "NodePluginsNotReady"
NODES_DELETING: Final = "NodesDeleting"

#: What a human (or KAITO, by retrying) does about each reason; appended to the status message.
FIXES: Final[Mapping[str, str]] = {
    QUOTA_EXCEEDED: "request a quota increase for this VM family in the region (Azure portal: "
    "Quotas; AWS: Service Quotas) or choose another instance type; KAITO retries periodically",
    SKU_NOT_AVAILABLE: "choose an instance type offered in the cluster's region (az vm list-skus "
    "--location REGION --size Standard_N) or run the cluster in another region",
    INSUFFICIENT_CAPACITY: "the cloud has no capacity for this instance type right now; KAITO "
    "retries with backoff, or choose another instance type or region",
    THROTTLED: "the cloud API asked KAITO to slow down; KAITO waits as long as it was told and "
    "retries (nothing to do unless it persists: then look for other clients of the subscription)",
    OPERATION_IN_PROGRESS: "another operation on the cluster or pool is running (an upgrade, a "
    "scale); KAITO retries once it finishes",
    AGENT_POOL_FAILED: "KAITO deletes the failed agent pool and creates it again; if it keeps "
    "failing, read the error code at https://aka.ms/aks-troubleshoot and check the cluster's "
    "outbound network, its subnet's free addresses and the VM extension logs",
    LAUNCH_FAILED: "the Karpenter provider could not launch the node; read the NodeClaim's "
    "Launched condition (kubectl describe nodeclaim NAME) and the provider's logs",
    AUTHENTICATION_FAILED: "check the manager's Azure identity: workload identity "
    "(AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and the federated credential "
    "of the service account) or a client secret (AZURE_CLIENT_SECRET), and AZURE_AUTHORITY_HOST",
    AUTHORIZATION_FAILED: "grant the manager's identity Contributor on the cluster (as upstream's "
    "gpu-provisioner needs), or a custom role with Microsoft.ContainerService/managedClusters/"
    "agentPools/read, write and delete: az role assignment create --assignee CLIENT_ID --role "
    "Contributor --scope CLUSTER_ID",
    CLUSTER_NOT_FOUND: "check --azure-subscription-id, --azure-resource-group and "
    "--azure-cluster-name (ARM_SUBSCRIPTION_ID, ARM_RESOURCE_GROUP, AZURE_CLUSTER_NAME)",
    UNSUPPORTED_API_VERSION: "the endpoint does not serve the api-version this "
    "azure-mgmt-containerservice sends; check --azure-resource-manager-endpoint, or install an "
    "azure-mgmt-containerservice the cloud supports",
    PROVIDER_UNREACHABLE: "check the manager's network path to the cloud API "
    "(--azure-resource-manager-endpoint, proxies, egress rules, TLS trust)",
    PROVIDER_ERROR: "KAITO retries with backoff; if it persists, read the error code in the "
    "message and the provider's documentation",
    PROVISIONING_TIMEOUT: "the node never joined the cluster; check the node's bootstrap (VM "
    "extension logs, outbound network, cluster version skew); KAITO replaces it",
    NODE_NOT_REGISTERED: "the NodeClaim launched but its node never registered with the cluster "
    "(Karpenter deletes it after its registration timeout); check the node's bootstrap logs; "
    "KAITO creates it again",
    NODE_CLAIM_NOT_READY: "wait: the node is being provisioned",
    NODE_NOT_READY: "wait: the node has joined and is starting; if it stays NotReady, "
    "kubectl describe node NAME shows why",
    NODE_PLUGINS_NOT_READY: "wait: the NVIDIA device plugin has not advertised nvidia.com/gpu "
    "yet; if it never does, check the GPU driver and device plugin DaemonSet on the node",
    NODES_DELETING: "wait: the workspace's nodes are being deleted",
}
