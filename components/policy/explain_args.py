"""Turn ``explain`` flags into a Request, refusing every value that could be misread (issue 10 §3).

An answer to a different question is worse than no answer: ``--resource pods/exec`` used to ask
about a resource literally named "pods/exec", which no request has. Each flag either means one
thing (``pods/exec`` is resource ``pods`` with subresource ``exec``) or is refused (exit 2).
"""

from __future__ import annotations

import re

from .builtins import NON_RESOURCE_VERBS, RESOURCE_VERBS
from .evaluator import Request
from .schema import DNS1123_SUBDOMAIN

# Resources and subresources are lower-case path segments (plural names, never kinds).
_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class UsageError(ValueError):
    """A flag value the command refuses (exit 2)."""


def _resource(value: str, subresource: str) -> tuple[str, str]:
    resource, slash, sub = value.partition("/")
    if slash:
        if subresource and subresource != sub:
            raise UsageError(
                f"explain: --resource {value} already names subresource {sub!r}, and --subresource says "
                f"{subresource!r}: give it once"
            )
        subresource = sub
    for flag, segment in (("--resource", resource), ("--subresource", subresource)):
        if flag == "--subresource" and not segment:
            continue
        if not _SEGMENT.fullmatch(segment):
            hint = ""
            if segment.lower() != segment:
                hint = " (resources are lower-case plurals such as pods, not kinds such as Pod)"
            elif segment == "*" or "/" in segment:
                hint = " (a request names one resource and at most one subresource, e.g. pods/exec)"
            raise UsageError(f"explain: {flag} {segment!r} is not a resource name a request can carry{hint}")
    return resource, subresource


def _api_group(value: str) -> str:
    if value == "" or (DNS1123_SUBDOMAIN.fullmatch(value) and value not in ("core", "v1")):
        return value
    hint = ""
    if "/" in value:
        hint = f" (write the group without its version: --api-group {value.split('/')[0]!r})"
    elif value in ("core", "v1"):
        hint = ' (the core group is the empty string: --api-group "")'
    raise UsageError(f"explain: --api-group {value!r} is not an API group{hint}")


def request_from_args(
    *,
    user: str,
    groups: list[str],
    verb: str,
    resource: str | None,
    path: str | None,
    api_group: str | None,
    subresource: str | None,
    namespace: str | None,
    name: str | None,
) -> Request:
    """Build the Request; exactly one of ``resource`` and ``path``; raises UsageError."""
    if (resource is None) == (path is None):
        raise UsageError(
            "explain: give exactly one of --resource (a resource request) or --path (a non-resource request)"
        )
    if path is not None:
        extra = [
            f
            for f, v in (
                ("--api-group", api_group),
                ("--subresource", subresource),
                ("--namespace", namespace),
                ("--name", name),
            )
            if v is not None
        ]
        if extra:
            raise UsageError(f"explain: {', '.join(extra)} only apply to --resource requests, not to --path")
        if not path.startswith("/") or "?" in path or "#" in path:
            raise UsageError(
                f"explain: --path {path!r} must be a URL path starting with '/', without a query "
                "(the policy compares the path only)"
            )
        if verb not in NON_RESOURCE_VERBS:
            raise UsageError(
                f"explain: --verb {verb!r} never reaches the policy for a URL: the apiserver uses the "
                f"lower-case HTTP method ({', '.join(NON_RESOURCE_VERBS)})"
            )
        return Request(user=user, groups=tuple(groups), verb=verb, path=path, resource_request=False)
    assert resource is not None
    res, sub = _resource(resource, subresource or "")
    if verb not in RESOURCE_VERBS:
        raise UsageError(
            f"explain: --verb {verb!r} never reaches the policy for a resource request: the apiserver's "
            f"verbs are {', '.join(RESOURCE_VERBS)}"
        )
    ns = namespace or ""
    if ns and not _NAMESPACE.fullmatch(ns):
        raise UsageError(f"explain: --namespace {ns!r} is not a namespace name (lower-case DNS label)")
    return Request(
        user=user,
        groups=tuple(groups),
        verb=verb,
        api_group=_api_group(api_group or ""),
        resource=res,
        subresource=sub,
        namespace=ns,
        name=name or "",
        resource_request=True,
    )
