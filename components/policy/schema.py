"""Field names of the audit.k8s.io/v1 Policy types and the wording of loader messages.

Kept apart from loader.py so the decoder reads as a walk over the schema. Messages follow the
apiserver's own (apimachinery field errors) so users can search for them, plus a hint when the
likely cause is known (a misspelling, a mis-indented key).
"""

from __future__ import annotations

import difflib
import re

from .model import LEVELS, STAGES

POLICY_FIELDS = ("apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields")
RULE_FIELDS = (
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
)
GROUP_RESOURCE_FIELDS = ("group", "resources", "resourceNames")
OBJECT_META_FIELDS = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
# apimachinery IsDNS1123Subdomain.
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LEVELS_MESSAGE = ", ".join(f'"{level}"' for level in LEVELS)
STAGES_MESSAGE = "allowed stages are " + ",".join(STAGES)


def quote(value: str) -> str:
    """Go's %q closely enough for messages."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggest(value: str, choices: tuple[str, ...]) -> str:
    lowered = {c.lower(): c for c in choices}
    if value.lower() in lowered:
        return f" (did you mean {quote(lowered[value.lower()])}? values are case-sensitive)"
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {quote(close[0])}?)" if close else ""


def unknown_field_message(path: str, key: str, allowed: tuple[str, ...]) -> str:
    """Explain an unknown key, including the common mis-indentation cases."""
    where = f"{path}.{key}" if path else key
    message = f'{where}: unknown field "{key}"'
    if allowed is GROUP_RESOURCE_FIELDS and key in RULE_FIELDS:
        message += f' ("{key}" belongs to the rule, not to a resources entry: check the indentation)'
    elif allowed is RULE_FIELDS and key in GROUP_RESOURCE_FIELDS:
        message += f' ("{key}" belongs inside a resources entry: check the indentation)'
    elif allowed is POLICY_FIELDS and key in RULE_FIELDS:
        message += f' ("{key}" belongs to a rule under "rules": check the indentation)'
    else:
        message += suggest(key, allowed)
    if allowed in (RULE_FIELDS, GROUP_RESOURCE_FIELDS):
        message += "; the apiserver drops unknown fields with only a warning, so the rule would match more requests"
    return message
