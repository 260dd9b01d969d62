"""OpenAPI v3 schemas of the built-in kinds the cluster serves.

Structures the operator and its tests use are modelled field by field (so strict field validation,
``kubectl explain`` and strategic merge patch work on them); rarely used corners are open objects
that keep whatever they are given.
"""

from __future__ import annotations

from kaito.apimachinery import OBJECT_META
from kaito.cluster._builtins._dsl import (
    ANY,
    BOOL,
    INT,
    INT64,
    INT_OR_STRING,
    MAP_QUANTITY,
    MAP_STRING,
    STRING,
    TIME,
    Schema,
    atomic_array,
    map_array,
    obj,
    set_array,
)

__all__ = ("KIND_SCHEMAS", "OBJECT_META", "kind_schema")

LABEL_SELECTOR = obj(
    {
        "matchLabels": MAP_STRING,
        "matchExpressions": atomic_array(
            obj(
                {"key": STRING, "operator": STRING, "values": atomic_array(STRING)},
                required=("key", "operator"),
            )
        ),
    },
    description="A label query over a set of resources.",
)
LABEL_SELECTOR["x-kubernetes-map-type"] = "atomic"

CONDITION = obj(
    {
        "type": STRING,
        "status": STRING,
        "reason": STRING,
        "message": STRING,
        "lastTransitionTime": TIME,
        "lastUpdateTime": TIME,
        "lastProbeTime": TIME,
        "lastHeartbeatTime": TIME,
        "observedGeneration": INT64,
    },
    required=("type", "status"),
)
CONDITIONS = map_array(CONDITION, "type")
LOCAL_OBJECT_REFERENCE = obj({"name": STRING})
OBJECT_REFERENCE = obj(
    {
        "kind": STRING,
        "namespace": STRING,
        "name": STRING,
        "uid": STRING,
        "apiVersion": STRING,
        "resourceVersion": STRING,
        "fieldPath": STRING,
    }
)

PROBE = obj(
    {
        "exec": obj({"command": atomic_array(STRING)}),
        "httpGet": obj(
            {
                "path": STRING,
                "port": INT_OR_STRING,
                "host": STRING,
                "scheme": STRING,
                "httpHeaders": atomic_array(obj({"name": STRING, "value": STRING})),
            },
            required=("port",),
        ),
        "tcpSocket": obj({"port": INT_OR_STRING, "host": STRING}, required=("port",)),
        "grpc": obj({"port": INT, "service": STRING}, required=("port",)),
        "initialDelaySeconds": INT,
        "timeoutSeconds": INT,
        "periodSeconds": INT,
        "successThreshold": INT,
        "failureThreshold": INT,
        "terminationGracePeriodSeconds": INT64,
    }
)

RESOURCES = obj(
    {
        "limits": MAP_QUANTITY,
        "requests": MAP_QUANTITY,
        "claims": map_array(
            obj({"name": STRING, "request": STRING}, required=("name",)), "name", patch=False
        ),
    }
)

CONTAINER = obj(
    {
        "name": STRING,
        "image": STRING,
        "command": atomic_array(STRING),
        "args": atomic_array(STRING),
        "workingDir": STRING,
        "ports": map_array(
            obj(
                {
                    "name": STRING,
                    "hostPort": INT,
                    "containerPort": INT,
                    "protocol": STRING,
                    "hostIP": STRING,
                },
                required=("containerPort",),
            ),
            "containerPort",
            "protocol",
        ),
        "envFrom": atomic_array(ANY),
        "env": map_array(
            obj({"name": STRING, "value": STRING, "valueFrom": ANY}, required=("name",)), "name"
        ),
        "resources": RESOURCES,
        "resizePolicy": atomic_array(ANY),
        "restartPolicy": STRING,
        "volumeMounts": map_array(
            obj(
                {
                    "name": STRING,
                    "readOnly": BOOL,
                    "recursiveReadOnly": STRING,
                    "mountPath": STRING,
                    "subPath": STRING,
                    "mountPropagation": STRING,
                    "subPathExpr": STRING,
                },
                required=("name", "mountPath"),
            ),
            "mountPath",
        ),
        "volumeDevices": map_array(obj({"name": STRING, "devicePath": STRING}), "devicePath"),
        "livenessProbe": PROBE,
        "readinessProbe": PROBE,
        "startupProbe": PROBE,
        "lifecycle": ANY,
        "terminationMessagePath": STRING,
        "terminationMessagePolicy": STRING,
        "imagePullPolicy": STRING,
        "securityContext": ANY,
        "stdin": BOOL,
        "stdinOnce": BOOL,
        "tty": BOOL,
    },
    required=("name",),
    description="A single application container that you want to run within a pod.",
)

TOLERATION = obj(
    {
        "key": STRING,
        "operator": STRING,
        "value": STRING,
        "effect": STRING,
        "tolerationSeconds": INT64,
    }
)
TAINT = obj(
    {"key": STRING, "value": STRING, "effect": STRING, "timeAdded": TIME},
    required=("key", "effect"),
)

VOLUME = obj({"name": STRING}, required=("name",), open=True)

POD_SPEC = obj(
    {
        "volumes": map_array(VOLUME, "name"),
        "initContainers": map_array(CONTAINER, "name"),
        "containers": map_array(CONTAINER, "name"),
        "ephemeralContainers": map_array(obj({"name": STRING}, open=True), "name"),
        "restartPolicy": STRING,
        "terminationGracePeriodSeconds": INT64,
        "activeDeadlineSeconds": INT64,
        "dnsPolicy": STRING,
        "nodeSelector": MAP_STRING,
        "serviceAccountName": STRING,
        "serviceAccount": STRING,
        "automountServiceAccountToken": BOOL,
        "nodeName": STRING,
        "hostNetwork": BOOL,
        "hostPID": BOOL,
        "hostIPC": BOOL,
        "shareProcessNamespace": BOOL,
        "securityContext": ANY,
        "imagePullSecrets": map_array(LOCAL_OBJECT_REFERENCE, "name"),
        "hostname": STRING,
        "subdomain": STRING,
        "affinity": ANY,
        "schedulerName": STRING,
        "tolerations": atomic_array(TOLERATION),
        "hostAliases": map_array(obj({"ip": STRING, "hostnames": atomic_array(STRING)}), "ip"),
        "priorityClassName": STRING,
        "priority": INT,
        "dnsConfig": ANY,
        "readinessGates": atomic_array(obj({"conditionType": STRING})),
        "runtimeClassName": STRING,
        "enableServiceLinks": BOOL,
        "preemptionPolicy": STRING,
        "overhead": MAP_QUANTITY,
        "topologySpreadConstraints": atomic_array(ANY),
        "setHostnameAsFQDN": BOOL,
        "os": obj({"name": STRING}),
        "hostUsers": BOOL,
        "schedulingGates": map_array(obj({"name": STRING}), "name"),
        "resourceClaims": map_array(obj({"name": STRING}, open=True), "name"),
        "resources": RESOURCES,
    },
    required=("containers",),
    description="PodSpec is a description of a pod.",
)

CONTAINER_STATUS = obj(
    {
        "name": STRING,
        "state": ANY,
        "lastState": ANY,
        "ready": BOOL,
        "restartCount": INT,
        "image": STRING,
        "imageID": STRING,
        "containerID": STRING,
        "started": BOOL,
        "allocatedResources": MAP_QUANTITY,
        "resources": ANY,
        "volumeMounts": atomic_array(ANY),
        "user": ANY,
        "allocatedResourcesStatus": atomic_array(ANY),
    }
)

POD_STATUS = obj(
    {
        "phase": STRING,
        "conditions": CONDITIONS,
        "message": STRING,
        "reason": STRING,
        "nominatedNodeName": STRING,
        "hostIP": STRING,
        "hostIPs": atomic_array(obj({"ip": STRING})),
        "podIP": STRING,
        "podIPs": map_array(obj({"ip": STRING}), "ip"),
        "startTime": TIME,
        "initContainerStatuses": atomic_array(CONTAINER_STATUS),
        "containerStatuses": atomic_array(CONTAINER_STATUS),
        "ephemeralContainerStatuses": atomic_array(CONTAINER_STATUS),
        "qosClass": STRING,
        "resize": STRING,
        "resourceClaimStatuses": atomic_array(ANY),
    }
)

POD_TEMPLATE = obj({"metadata": OBJECT_META, "spec": POD_SPEC})

PVC = obj(
    {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, "spec": ANY, "status": ANY}
)


def _kind(
    spec: Schema | None, status: Schema | None = None, *, doc: str = "", **extra: Schema
) -> Schema:
    props: dict[str, Schema] = {
        "apiVersion": {
            **STRING,
            "description": (
                "APIVersion defines the versioned schema of this representation of an object."
            ),
        },
        "kind": {
            **STRING,
            "description": (
                "Kind is a string value representing the REST resource this object represents."
            ),
        },
        "metadata": OBJECT_META,
    }
    if spec is not None:
        props["spec"] = spec
    if status is not None:
        props["status"] = status
    props.update(extra)
    return obj(props, description=doc)


def _workload_status(**extra: Schema) -> Schema:
    return obj(
        {
            "observedGeneration": INT64,
            "replicas": INT,
            "readyReplicas": INT,
            "availableReplicas": INT,
            "updatedReplicas": INT,
            "conditions": CONDITIONS,
            "collisionCount": INT,
            **extra,
        }
    )


KIND_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("", "Namespace"): _kind(
        obj({"finalizers": atomic_array(STRING)}),
        obj({"phase": STRING, "conditions": CONDITIONS}),
        doc="Namespace provides a scope for Names.",
    ),
    ("", "Node"): _kind(
        obj(
            {
                "podCIDR": STRING,
                "podCIDRs": set_array(STRING),
                "providerID": STRING,
                "unschedulable": BOOL,
                "taints": atomic_array(TAINT),
                "configSource": ANY,
                "externalID": STRING,
            }
        ),
        obj(
            {
                "capacity": MAP_QUANTITY,
                "allocatable": MAP_QUANTITY,
                "phase": STRING,
                "conditions": CONDITIONS,
                "addresses": map_array(
                    obj({"type": STRING, "address": STRING}, required=("type", "address")), "type"
                ),
                "daemonEndpoints": ANY,
                "nodeInfo": ANY,
                "images": atomic_array(ANY),
                "volumesInUse": atomic_array(STRING),
                "volumesAttached": atomic_array(ANY),
                "config": ANY,
                "features": ANY,
                "runtimeHandlers": atomic_array(ANY),
            }
        ),
        doc="Node is a worker node in Kubernetes.",
    ),
    ("", "Pod"): _kind(
        POD_SPEC,
        POD_STATUS,
        doc="Pod is a collection of containers that can run on a host.",
    ),
    ("", "PodTemplate"): _kind(None, None, template=POD_TEMPLATE),
    ("", "Service"): _kind(
        obj(
            {
                "ports": map_array(
                    obj(
                        {
                            "name": STRING,
                            "protocol": STRING,
                            "appProtocol": STRING,
                            "port": INT,
                            "targetPort": INT_OR_STRING,
                            "nodePort": INT,
                        },
                        required=("port",),
                    ),
                    "port",
                    "protocol",
                ),
                "selector": MAP_STRING,
                "clusterIP": STRING,
                "clusterIPs": atomic_array(STRING),
                "type": STRING,
                "externalIPs": atomic_array(STRING),
                "sessionAffinity": STRING,
                "loadBalancerIP": STRING,
                "loadBalancerSourceRanges": atomic_array(STRING),
                "externalName": STRING,
                "externalTrafficPolicy": STRING,
                "healthCheckNodePort": INT,
                "publishNotReadyAddresses": BOOL,
                "sessionAffinityConfig": ANY,
                "ipFamilies": atomic_array(STRING),
                "ipFamilyPolicy": STRING,
                "allocateLoadBalancerNodePorts": BOOL,
                "loadBalancerClass": STRING,
                "internalTrafficPolicy": STRING,
                "trafficDistribution": STRING,
            }
        ),
        obj({"loadBalancer": obj({"ingress": atomic_array(ANY)}), "conditions": CONDITIONS}),
        doc="Service is a named abstraction of software service.",
    ),
    ("", "Endpoints"): _kind(None, None, subsets=atomic_array(ANY)),
    ("", "ConfigMap"): _kind(
        None,
        None,
        data=MAP_STRING,
        binaryData=MAP_STRING,
        immutable=BOOL,
        doc="ConfigMap holds configuration data for pods to consume.",
    ),
    ("", "Secret"): _kind(
        None,
        None,
        data=MAP_STRING,
        stringData=MAP_STRING,
        type=STRING,
        immutable=BOOL,
        doc="Secret holds secret data of a certain type.",
    ),
    ("", "ServiceAccount"): _kind(
        None,
        None,
        secrets=map_array(OBJECT_REFERENCE, "name"),
        imagePullSecrets=atomic_array(LOCAL_OBJECT_REFERENCE),
        automountServiceAccountToken=BOOL,
    ),
    ("", "Event"): _kind(
        None,
        None,
        involvedObject=OBJECT_REFERENCE,
        reason=STRING,
        message=STRING,
        source=obj({"component": STRING, "host": STRING}),
        firstTimestamp=TIME,
        lastTimestamp=TIME,
        count=INT,
        type=STRING,
        eventTime={**STRING, "format": "date-time"},
        series=obj({"count": INT, "lastObservedTime": STRING}),
        action=STRING,
        related=OBJECT_REFERENCE,
        reportingComponent=STRING,
        reportingInstance=STRING,
    ),
    ("", "PersistentVolumeClaim"): _kind(ANY, ANY),
    ("", "PersistentVolume"): _kind(ANY, ANY),
    ("apps", "Deployment"): _kind(
        obj(
            {
                "replicas": INT,
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE,
                "strategy": obj(
                    {
                        "type": STRING,
                        "rollingUpdate": obj(
                            {"maxUnavailable": INT_OR_STRING, "maxSurge": INT_OR_STRING}
                        ),
                    }
                ),
                "minReadySeconds": INT,
                "revisionHistoryLimit": INT,
                "paused": BOOL,
                "progressDeadlineSeconds": INT,
            },
            required=("selector", "template"),
        ),
        _workload_status(unavailableReplicas=INT, terminatingReplicas=INT),
        doc="Deployment enables declarative updates for Pods and ReplicaSets.",
    ),
    ("apps", "StatefulSet"): _kind(
        obj(
            {
                "replicas": INT,
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE,
                "volumeClaimTemplates": atomic_array(PVC),
                "serviceName": STRING,
                "podManagementPolicy": STRING,
                "updateStrategy": obj(
                    {
                        "type": STRING,
                        "rollingUpdate": obj({"partition": INT, "maxUnavailable": INT_OR_STRING}),
                    }
                ),
                "revisionHistoryLimit": INT,
                "minReadySeconds": INT,
                "persistentVolumeClaimRetentionPolicy": obj(
                    {"whenDeleted": STRING, "whenScaled": STRING}
                ),
                "ordinals": obj({"start": INT}),
            },
            required=("selector", "template"),
        ),
        _workload_status(currentReplicas=INT, currentRevision=STRING, updateRevision=STRING),
        doc="StatefulSet represents a set of pods with consistent identities.",
    ),
    ("apps", "ReplicaSet"): _kind(
        obj(
            {
                "replicas": INT,
                "minReadySeconds": INT,
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE,
            },
            required=("selector",),
        ),
        _workload_status(fullyLabeledReplicas=INT, terminatingReplicas=INT),
    ),
    ("apps", "DaemonSet"): _kind(
        obj(
            {
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE,
                "updateStrategy": ANY,
                "minReadySeconds": INT,
                "revisionHistoryLimit": INT,
            }
        ),
        ANY,
    ),
    ("apps", "ControllerRevision"): _kind(None, None, data=ANY, revision=INT64),
    ("batch", "Job"): _kind(
        obj(
            {
                "parallelism": INT,
                "completions": INT,
                "activeDeadlineSeconds": INT64,
                "podFailurePolicy": ANY,
                "successPolicy": ANY,
                "backoffLimit": INT,
                "backoffLimitPerIndex": INT,
                "maxFailedIndexes": INT,
                "selector": LABEL_SELECTOR,
                "manualSelector": BOOL,
                "template": POD_TEMPLATE,
                "ttlSecondsAfterFinished": INT,
                "completionMode": STRING,
                "suspend": BOOL,
                "podReplacementPolicy": STRING,
                "managedBy": STRING,
            },
            required=("template",),
        ),
        obj(
            {
                "conditions": CONDITIONS,
                "startTime": TIME,
                "completionTime": TIME,
                "active": INT,
                "succeeded": INT,
                "failed": INT,
                "terminating": INT,
                "completedIndexes": STRING,
                "failedIndexes": STRING,
                "uncountedTerminatedPods": ANY,
                "ready": INT,
            }
        ),
        doc="Job represents the configuration of a single job.",
    ),
    ("batch", "CronJob"): _kind(ANY, ANY),
    ("coordination.k8s.io", "Lease"): _kind(
        obj(
            {
                "holderIdentity": STRING,
                "leaseDurationSeconds": INT,
                "acquireTime": {**STRING, "format": "date-time"},
                "renewTime": {**STRING, "format": "date-time"},
                "leaseTransitions": INT,
                "strategy": STRING,
                "preferredHolder": STRING,
            }
        ),
        doc="Lease defines a lease concept.",
    ),
    ("events.k8s.io", "Event"): _kind(
        None,
        None,
        eventTime={**STRING, "format": "date-time"},
        series=obj({"count": INT, "lastObservedTime": STRING}),
        reportingController=STRING,
        reportingInstance=STRING,
        action=STRING,
        reason=STRING,
        regarding=OBJECT_REFERENCE,
        related=OBJECT_REFERENCE,
        note=STRING,
        type=STRING,
        deprecatedSource=obj({"component": STRING, "host": STRING}),
        deprecatedFirstTimestamp=TIME,
        deprecatedLastTimestamp=TIME,
        deprecatedCount=INT,
    ),
    ("discovery.k8s.io", "EndpointSlice"): _kind(
        None,
        None,
        addressType=STRING,
        endpoints=atomic_array(ANY),
        ports=atomic_array(ANY),
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _kind(
        obj(
            {
                "group": STRING,
                "names": ANY,
                "scope": STRING,
                "versions": atomic_array(ANY),
                "conversion": ANY,
                "preserveUnknownFields": BOOL,
            },
            required=("group", "names", "scope", "versions"),
        ),
        ANY,
        doc=(
            "CustomResourceDefinition represents a resource that should be exposed on the API "
            "server."
        ),
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _kind(
        None,
        None,
        webhooks=map_array(obj({"name": STRING}, required=("name",), open=True), "name"),
    ),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _kind(
        None,
        None,
        webhooks=map_array(obj({"name": STRING}, required=("name",), open=True), "name"),
    ),
    ("storage.k8s.io", "StorageClass"): _kind(
        None,
        None,
        provisioner=STRING,
        parameters=MAP_STRING,
        reclaimPolicy=STRING,
        mountOptions=atomic_array(STRING),
        allowVolumeExpansion=BOOL,
        volumeBindingMode=STRING,
        allowedTopologies=atomic_array(ANY),
    ),
    ("rbac.authorization.k8s.io", "Role"): _kind(None, None, rules=atomic_array(ANY)),
    ("rbac.authorization.k8s.io", "ClusterRole"): _kind(
        None, None, rules=atomic_array(ANY), aggregationRule=ANY
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): _kind(
        None, None, subjects=atomic_array(ANY), roleRef=ANY
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _kind(
        None, None, subjects=atomic_array(ANY), roleRef=ANY
    ),
    ("scheduling.k8s.io", "PriorityClass"): _kind(
        None,
        None,
        value=INT,
        globalDefault=BOOL,
        description=STRING,
        preemptionPolicy=STRING,
    ),
    ("policy", "PodDisruptionBudget"): _kind(ANY, ANY),
}

# The review kinds (answered, never stored) and the TokenRequest subresource body.
for _group, _review in (
    ("authentication.k8s.io", "TokenReview"),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("authentication.k8s.io", "TokenRequest"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "LocalSubjectAccessReview"),
):
    KIND_SCHEMAS[(_group, _review)] = _kind(ANY, ANY)
del _group, _review

# Scale subresource body (autoscaling/v1 Scale).
KIND_SCHEMAS[("autoscaling", "Scale")] = _kind(
    obj({"replicas": INT}), obj({"replicas": INT, "selector": STRING})
)


def kind_schema(group: str, kind: str) -> Schema:
    """The schema of a built-in kind."""
    return KIND_SCHEMAS[(group, kind)]
