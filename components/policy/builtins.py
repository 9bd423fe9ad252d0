"""Built-in API groups, resources and subresources of current Kubernetes (1.33-1.37).

Used by lint only, to flag resource names that a *known* group does not serve (``pods/logs``,
``deployments`` in the core group, ``token reviews``). Groups not listed here (CRDs, aggregated APIs
other than metrics) are never judged. Collected from ``kubectl api-resources`` and the
kubernetes/kubernetes registry (pkg/registry/*/rest/storage_*.go), alpha APIs included because a
cluster may enable them.
"""

from __future__ import annotations

# group -> resource -> subresources
BUILTIN: dict[str, dict[str, frozenset[str]]] = {
    "": {
        "bindings": frozenset(),
        "componentstatuses": frozenset(),
        "configmaps": frozenset(),
        "endpoints": frozenset(),
        "events": frozenset(),
        "limitranges": frozenset(),
        "namespaces": frozenset({"status", "finalize"}),
        "nodes": frozenset({"status", "proxy"}),
        "persistentvolumeclaims": frozenset({"status"}),
        "persistentvolumes": frozenset({"status"}),
        "pods": frozenset(
            {
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status",
            }
        ),
        "podtemplates": frozenset(),
        "replicationcontrollers": frozenset({"status", "scale"}),
        "resourcequotas": frozenset({"status"}),
        "secrets": frozenset(),
        "serviceaccounts": frozenset({"token"}),
        "services": frozenset({"status", "proxy"}),
    },
    "admissionregistration.k8s.io": {
        "mutatingwebhookconfigurations": frozenset(),
        "validatingwebhookconfigurations": frozenset(),
        "validatingadmissionpolicies": frozenset({"status"}),
        "validatingadmissionpolicybindings": frozenset(),
        "mutatingadmissionpolicies": frozenset(),
        "mutatingadmissionpolicybindings": frozenset(),
    },
    "apiextensions.k8s.io": {"customresourcedefinitions": frozenset({"status"})},
    "apiregistration.k8s.io": {"apiservices": frozenset({"status"})},
    "apps": {
        "controllerrevisions": frozenset(),
        "daemonsets": frozenset({"status"}),
        "deployments": frozenset({"status", "scale"}),
        "replicasets": frozenset({"status", "scale"}),
        "statefulsets": frozenset({"status", "scale"}),
    },
    "authentication.k8s.io": {
        "tokenreviews": frozenset(),
        "selfsubjectreviews": frozenset(),
    },
    "authorization.k8s.io": {
        "localsubjectaccessreviews": frozenset(),
        "selfsubjectaccessreviews": frozenset(),
        "selfsubjectrulesreviews": frozenset(),
        "subjectaccessreviews": frozenset(),
    },
    "autoscaling": {"horizontalpodautoscalers": frozenset({"status"})},
    "batch": {"cronjobs": frozenset({"status"}), "jobs": frozenset({"status"})},
    "certificates.k8s.io": {
        "certificatesigningrequests": frozenset({"status", "approval"}),
        "clustertrustbundles": frozenset(),
        "podcertificaterequests": frozenset({"status"}),
    },
    "coordination.k8s.io": {"leases": frozenset(), "leasecandidates": frozenset()},
    "discovery.k8s.io": {"endpointslices": frozenset()},
    "events.k8s.io": {"events": frozenset()},
    "flowcontrol.apiserver.k8s.io": {
        "flowschemas": frozenset({"status"}),
        "prioritylevelconfigurations": frozenset({"status"}),
    },
    "internal.apiserver.k8s.io": {"storageversions": frozenset({"status"})},
    "networking.k8s.io": {
        "ingressclasses": frozenset(),
        "ingresses": frozenset({"status"}),
        "ipaddresses": frozenset(),
        "networkpolicies": frozenset(),
        "servicecidrs": frozenset({"status"}),
    },
    "node.k8s.io": {"runtimeclasses": frozenset()},
    "policy": {"poddisruptionbudgets": frozenset({"status"})},
    "rbac.authorization.k8s.io": {
        "clusterrolebindings": frozenset(),
        "clusterroles": frozenset(),
        "rolebindings": frozenset(),
        "roles": frozenset(),
    },
    "resource.k8s.io": {
        "deviceclasses": frozenset(),
        "devicetaintrules": frozenset({"status"}),
        "resourceclaims": frozenset({"status"}),
        "resourceclaimtemplates": frozenset(),
        "resourceslices": frozenset(),
    },
    "scheduling.k8s.io": {"priorityclasses": frozenset()},
    "storage.k8s.io": {
        "csidrivers": frozenset(),
        "csinodes": frozenset(),
        "csistoragecapacities": frozenset(),
        "storageclasses": frozenset(),
        "volumeattachments": frozenset({"status"}),
        "volumeattributesclasses": frozenset(),
    },
    "storagemigration.k8s.io": {"storageversionmigrations": frozenset({"status"})},
    # Aggregated, not built in, but served by metrics-server on nearly every cluster.
    "metrics.k8s.io": {"nodes": frozenset(), "pods": frozenset()},
}

# Groups that current Kubernetes no longer serves at all, with the release that removed the last
# version. Rules naming them are dead weight (the seed policy lists both).
REMOVED_GROUPS: dict[str, str] = {
    "extensions": "1.22",
    "settings.k8s.io": "1.20",
}

# Resources whose request or response bodies carry credentials or arbitrary private data:
# (group, resource, subresource). Bodies of requests to these must never reach the audit log.
SENSITIVE: tuple[tuple[str, str, str], ...] = (
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", "token"),
    ("authentication.k8s.io", "tokenreviews", ""),
)

RESOURCE_VERBS: tuple[str, ...] = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
)
# Non-resource requests use the lower-case HTTP method as the verb.
NON_RESOURCE_VERBS: tuple[str, ...] = ("get", "head", "post", "put", "patch", "delete", "options")
WRITE_VERBS: frozenset[str] = frozenset({"create", "update", "patch", "delete", "deletecollection", "post", "put"})

# Identities that hold cluster-admin on kubeadm and DCE clusters. Dropping their writes at level
# None removes the most important entries from the audit trail.
PRIVILEGED_USERS: frozenset[str] = frozenset({"kubernetes-admin", "kube-admin", "system:admin"})
PRIVILEGED_GROUPS: frozenset[str] = frozenset({"system:masters", "kubeadm:cluster-admins"})


def resources_in_other_groups(resource: str) -> list[str]:
    """Built-in groups that serve ``resource`` (to suggest the right group)."""
    return [g for g, table in BUILTIN.items() if resource in table]


# Groups that hold many identities at once (every service account, every node, everyone logged
# in). A None rule that drops their writes hides what a stolen token did, e.g. a service account
# creating a ClusterRoleBinding.
BROAD_GROUPS: frozenset[str] = frozenset({"system:serviceaccounts", "system:authenticated", "system:nodes"})
BROAD_GROUP_PREFIXES: tuple[str, ...] = ("system:serviceaccounts:",)
