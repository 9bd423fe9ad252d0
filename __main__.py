"""kube-audit: Kubernetes API-server audit logging as a stack-config change.

Config is read and validated in one place (components/settings/__init__.py) before any resource exists.
"""

import pulumi

from components.audit_logging import AuditLogging
from components.drift.summary import refusal_report
from components.insight_agent.component import gather_release_plan
from components.insight_agent.plan import ReleasePlanError
from components.settings import SettingsError, load_settings

try:
    settings = load_settings()
except SettingsError as error:
    # A plain message naming the key beats a traceback; raising stops the run before any resource.
    raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None

try:
    # Reads the cluster (Helm's record of insight-agent) before any resource exists, so a refusal
    # changes nothing on any node.
    agent_plan = gather_release_plan(settings)
except ReleasePlanError as error:
    raise pulumi.RunError(f"insight-agent:\n{error}") from None

audit = AuditLogging("audit", settings, agent_plan)
pulumi.export("enabled", settings.enabled)
pulumi.export("masters", audit.masters)
pulumi.export("kubeadm", audit.kubeadm_note)

if audit.refusals:
    # A preview of what `up` would refuse fails, with `up`'s own message per master (the resources
    # are declared first, so the diff is still shown above the error).
    raise pulumi.RunError(refusal_report(audit.refusals, len(settings.masters)))
