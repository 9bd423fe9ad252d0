"""Load an audit policy as strictly as kube-apiserver does, and stricter where it is lax.

The apiserver (k8s.io/apiserver pkg/audit/policy/reader.go) decodes the YAML, falls back to a
lenient decode that *drops* unknown fields and duplicate keys with only a log warning, then runs
``ValidatePolicy`` (pkg/apis/audit/validation/validation.go) and refuses zero rules. We run the same
checks, but every dropped field is an error here: a misspelled or mis-indented matcher that is
dropped makes its rule match *more* requests, which is how audit trails go blind or leak secrets.

Every problem is reported at the offending node, and loading continues after a problem so that one
run shows them all.
"""

from __future__ import annotations

from collections.abc import Callable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .model import LEVELS, STAGES, GroupResources, Policy, PolicyRule
from .problems import PolicyError, Problem
from .schema import (
    DNS1123_MESSAGE,
    DNS1123_SUBDOMAIN,
    GROUP_RESOURCE_FIELDS,
    LEVELS_MESSAGE,
    OBJECT_META_FIELDS,
    POLICY_FIELDS,
    RULE_FIELDS,
    STAGES_MESSAGE,
    quote,
    suggest,
    unknown_field_message,
)
from .yamlnodes import compose, describe, is_null, mapping_items, position, scalar_kind

API_VERSION = "audit.k8s.io/v1"
KIND = "Policy"
# First kube-apiserver release whose validation accepts group "*" (kubernetes/apiserver 6728d94).
WILDCARD_GROUP_SINCE = (1, 36)
# kube-apiserver reads a policy of any size, but checking one here costs about 15 s and 100 MB per
# MiB of YAML (pure-Python parsing with positions): these caps keep validate, lint and a preview
# within seconds. The shipped profiles are under 8 KiB and 20 rules; a resourceNames list of 100,000
# names (benchmarks/bench_lint.py) still fits.
MAX_POLICY_BYTES = 1 << 20
MAX_POLICY_RULES = 5000


def too_big(size: int) -> str:
    return (f"the policy is {size} bytes; kube-audit checks policies of up to {MAX_POLICY_BYTES} bytes (1 MiB), "
            "and the apiserver reads every byte of it at each start")


class _Decoder:
    """Turns the node tree into the model, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, kubernetes_version: tuple[int, int] | None) -> None:
        self.source = source
        self.version = kubernetes_version
        self.problems: list[Problem] = []
        self.name: str | None = None
        self.omit_stages: tuple[str, ...] = ()
        self.omit_managed_fields: bool | None = None
        self.annotations: list[tuple[str, str]] = []

    # -- reporting ---------------------------------------------------------------------------

    def report(self, node: Node, message: str, tolerated: bool = False) -> None:
        line, col = position(node)
        self.problems.append(Problem(self.source, line, col, message, tolerated))

    def invalid(self, node: Node, path: str, value: str, detail: str) -> None:
        """A ValidatePolicy error, worded like the apiserver's (field.Invalid)."""
        self.report(node, f"{path}: Invalid value: {quote(value)}: {detail}")

    # -- typed scalars and lists ---------------------------------------------------------------

    def fields(self, node: Node, path: str, allowed: tuple[str, ...], what: str) -> dict[str, Node]:
        """Keys of a mapping node by name, after refusing unknown keys and duplicates."""
        if not isinstance(node, MappingNode):
            self.report(node, f"{path or 'policy'}: expected {what} (a mapping), got {describe(node)}")
            return {}
        result: dict[str, Node] = {}
        for key, key_node, value in mapping_items(node, self.source, self.problems):
            if key not in allowed:
                self.report(key_node, unknown_field_message(path, key, allowed), tolerated=True)
                continue
            if not is_null(value):  # null is "not set", as in the apiserver's JSON decoding
                result[key] = value
        return result

    def string(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and scalar_kind(node) == "str":
            return str(node.value)
        hint = ' (quote it: "...")' if isinstance(node, ScalarNode) else ""
        self.report(node, f"{path}: expected a string, got {describe(node)}{hint}")
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and scalar_kind(node) == "bool":
            # go-yaml v2 booleans: y/yes/true/on and n/no/false/off in three casings.
            return node.value.lower() in ("y", "yes", "true", "on")
        self.report(node, f"{path}: expected true or false, got {describe(node)}")
        return None

    def string_items(self, node: Node, path: str) -> list[tuple[int, str, Node]]:
        """(index, value, node) of each well-typed entry of a list of strings."""
        if not isinstance(node, SequenceNode):
            self.report(node, f"{path}: expected a list of strings, got {describe(node)}")
            return []
        result = []
        for i, item in enumerate(node.value):
            if is_null(item):
                # The apiserver reads "" here; an empty item is always a slip, so refuse it.
                self.report(item, f'{path}[{i}]: empty list item (the apiserver reads it as "")', tolerated=True)
                result.append((i, "", item))
                continue
            value = self.string(item, f"{path}[{i}]")
            if value is not None:
                result.append((i, value, item))
        return result

    def strings(self, node: Node, path: str) -> tuple[str, ...]:
        """A list of strings; entries with problems are reported and left out."""
        return tuple(value for _, value, _ in self.string_items(node, path))

    def items(self, node: Node, path: str, what: str) -> list[tuple[int, Node]]:
        """The (index, node) items of a list of objects."""
        if not isinstance(node, SequenceNode):
            self.report(node, f"{path}: expected a list of {what}, got {describe(node)}")
            return []
        result = []
        for i, item in enumerate(node.value):
            if is_null(item):
                # The apiserver decodes an empty object here: a rule with no level (refused) or
                # a resources entry for the whole core group.
                self.report(item, f"{path}[{i}]: empty list item (the apiserver reads it as {{}})", tolerated=True)
                item = MappingNode("tag:yaml.org,2002:map", [], item.start_mark, item.end_mark)
            result.append((i, item))
        return result

    # -- validation of single values (validation.go, one function each) ----------------------

    def stages(self, node: Node, path: str) -> tuple[str, ...]:
        items = self.string_items(node, path)
        for i, stage, item in items:
            if stage not in STAGES:
                self.invalid(item, f"{path}[{i}]", stage, STAGES_MESSAGE + suggest(stage, STAGES))
        return tuple(stage for _, stage, _ in items)

    def level(self, node: Node | None, rule_node: Node, path: str) -> str:
        value = self.string(node, path) if node is not None else ""
        if value is None:
            return ""
        if value == "":
            self.report(node or rule_node, f"{path}: Required value: one of {LEVELS_MESSAGE}")
        elif value not in LEVELS:
            self.report(
                node or rule_node,
                f"{path}: Unsupported value: {quote(value)}: supported values: {LEVELS_MESSAGE}"
                + suggest(value, LEVELS),
            )
        return value

    def non_resource_urls(self, node: Node, path: str) -> tuple[str, ...]:
        items = self.string_items(node, path)
        for i, url, item in items:
            if url == "*":
                continue
            if not url.startswith("/"):
                self.invalid(item, f"{path}[{i}]", url, "non-resource URL rules must begin with a '/' character")
            if url and "*" in url[:-1]:
                self.invalid(
                    item, f"{path}[{i}]", url, "non-resource URL wildcards '*' must be the final character of the rule"
                )
        return tuple(url for _, url, _ in items)

    def group(self, node: Node, path: str) -> str:
        value = self.string(node, path)
        if value is None:
            return ""
        if value == "*":
            if self.version is not None and self.version < WILDCARD_GROUP_SINCE:
                self.invalid(
                    node,
                    path,
                    value,
                    'group "*" (every API group) needs kube-apiserver 1.36 or later; '
                    f"{self.version[0]}.{self.version[1]} refuses to start with it",
                )
            return value
        if value == "":
            return value
        detail = []
        if len(value) > 253:
            detail.append("must be no more than 253 characters")
        if not DNS1123_SUBDOMAIN.fullmatch(value):
            detail.append(DNS1123_MESSAGE)
        if detail:
            hint = ""
            if "/" in value:
                hint = f" (write the group without its version: {quote(value.split('/')[0])})"
            self.invalid(node, path, value, ",".join(detail) + hint)
        return value

    # -- objects -------------------------------------------------------------------------------

    def group_resources(self, node: Node, path: str) -> GroupResources:
        f = self.fields(node, path, GROUP_RESOURCE_FIELDS, "a group and its resources")
        group = self.group(f["group"], f"{path}.group") if "group" in f else ""
        resources = self.strings(f["resources"], f"{path}.resources") if "resources" in f else ()
        names = self.strings(f["resourceNames"], f"{path}.resourceNames") if "resourceNames" in f else ()
        if names and not resources:
            self.invalid(
                f["resourceNames"],
                f"{path}.resourceNames",
                ",".join(names),
                "using resourceNames requires at least one resource",
            )
        line, col = position(node)
        return GroupResources(group, resources, names, line, col)

    def rule(self, node: Node, path: str, lines: list[str]) -> PolicyRule:
        f = self.fields(node, path, RULE_FIELDS, "a rule")
        level = self.level(f.get("level"), node, f"{path}.level")
        get = self._getter(f, path)
        resources: list[GroupResources] = []
        if "resources" in f:
            for i, item in self.items(f["resources"], f"{path}.resources", "groups"):
                # The apiserver's field path has no index here ("rules[i].resources.group").
                resources.append(self.group_resources(item, f"{path}.resources[{i}]"))
        urls = self.non_resource_urls(f["nonResourceURLs"], f"{path}.nonResourceURLs") if "nonResourceURLs" in f else ()
        namespaces = get("namespaces", self.strings)
        if urls and (resources or namespaces):
            self.invalid(
                f["nonResourceURLs"],
                f"{path}.nonResourceURLs",
                ",".join(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        omf = self.boolean(f["omitManagedFields"], f"{path}.omitManagedFields") if "omitManagedFields" in f else None
        first, last = _span(node, lines)
        return PolicyRule(
            level=level,
            users=get("users", self.strings),
            user_groups=get("userGroups", self.strings),
            verbs=get("verbs", self.strings),
            resources=tuple(resources),
            namespaces=namespaces,
            non_resource_urls=urls,
            omit_stages=get("omitStages", self.stages),
            omit_managed_fields=omf,
            line=first,
            end_line=last,
            col=position(node)[1],
            positions=tuple((key, *position(value)) for key, value in f.items()),
        )

    def _getter(
        self, f: dict[str, Node], path: str
    ) -> Callable[[str, Callable[[Node, str], tuple[str, ...]]], tuple[str, ...]]:
        def get(name: str, decode: Callable[[Node, str], tuple[str, ...]]) -> tuple[str, ...]:
            return decode(f[name], f"{path}.{name}") if name in f else ()

        return get

    def metadata(self, node: Node) -> str | None:
        """ObjectMeta: typed like the apiserver's decoder would; ``name`` and annotations are kept."""
        f = self.fields(node, "metadata", OBJECT_META_FIELDS, "object metadata")
        for key, value in f.items():
            path = f"metadata.{key}"
            if key in ("labels", "annotations"):
                sub = self.fields(value, path, tuple(_keys(value)), "a string map")
                for name, item in sub.items():
                    text = self.string(item, f"{path}.{name}")
                    if key == "annotations" and text is not None:
                        self.annotations.append((name, text))
            elif key == "finalizers":
                self.strings(value, path)
            elif key in ("generation", "deletionGracePeriodSeconds"):
                if not (isinstance(value, ScalarNode) and scalar_kind(value) == "int"):
                    self.report(value, f"{path}: expected an integer, got {describe(value)}")
            elif key in ("ownerReferences", "managedFields", "creationTimestamp", "deletionTimestamp"):
                # Server-managed fields: meaningless in a policy file, and costly to type-check.
                self.report(value, f"{path}: server-managed field; remove it from the policy file", tolerated=True)
            else:
                self.string(value, path)
        return self.string(f["name"], "metadata.name") if "name" in f else None

    def policy(self, root: Node | None, text: str) -> tuple[PolicyRule, ...] | None:
        if root is None:
            self.problems.append(Problem(self.source, 1, 1, "empty file: expected an audit.k8s.io/v1 Policy"))
            return None
        f = self.fields(root, "", POLICY_FIELDS, "an audit Policy")
        if not isinstance(root, MappingNode):
            return None
        self.type_meta(f, root)
        if "metadata" in f:
            self.name = self.metadata(f["metadata"])
        self.omit_stages = self.stages(f["omitStages"], "omitStages") if "omitStages" in f else ()
        self.omit_managed_fields = (
            self.boolean(f["omitManagedFields"], "omitManagedFields") if "omitManagedFields" in f else None
        )
        if isinstance(f.get("rules"), SequenceNode) and len(f["rules"].value) > MAX_POLICY_RULES:
            self.report(f["rules"], f"rules: {len(f['rules'].value)} rules; kube-audit checks policies of up to "
                        f"{MAX_POLICY_RULES} rules (the apiserver walks them in order for every request)")
            return None
        lines = text.splitlines()
        rules = [
            self.rule(item, f"rules[{i}]", lines)
            for i, item in (self.items(f["rules"], "rules", "rules") if "rules" in f else [])
        ]
        if not rules and all(p.tolerated for p in self.problems):
            self.report(
                f.get("rules", root),
                'policy has no rules (the apiserver refuses it: "loaded illegal policy with 0 rules")',
            )
        return tuple(rules)

    def type_meta(self, f: dict[str, Node], root: Node) -> None:
        """apiVersion and kind: only audit.k8s.io/v1 Policy is loadable since Kubernetes 1.24."""
        if "apiVersion" not in f:
            self.report(root, f"apiVersion is required: {API_VERSION}")
        else:
            version = self.string(f["apiVersion"], "apiVersion")
            if version is not None and version != API_VERSION:
                old = ""
                if version.startswith("audit.k8s.io/"):
                    old = " (v1alpha1 and v1beta1 were removed in Kubernetes 1.24)"
                self.report(f["apiVersion"], f"apiVersion {quote(version)} is not supported: use {API_VERSION}{old}")
        if "kind" in f:  # a missing kind is defaulted by the apiserver's decoder
            kind = self.string(f["kind"], "kind")
            if kind and kind != KIND:  # "" is defaulted like a missing kind
                self.report(f["kind"], f"kind {quote(kind)} is not supported: use {KIND}")


def _keys(node: Node) -> list[str]:
    if isinstance(node, MappingNode):
        return [str(k.value) for k, _ in node.value if isinstance(k, ScalarNode)]
    return []


def _span(node: Node, lines: list[str]) -> tuple[int, int]:
    """1-based first and last line of a block list item, without trailing blanks or comments."""
    start = node.start_mark.line
    end = node.end_mark.line
    # end_mark points at the next token; that line is ours only if the token starts mid-line.
    if end >= len(lines) or node.end_mark.column <= len(lines[end]) - len(lines[end].lstrip()):
        end -= 1
    while end > start and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end -= 1
    return start + 1, max(start, end) + 1


def load_policy(
    text: str,
    source: str = "<policy>",
    *,
    kubernetes_version: tuple[int, int] | None = None,
    lenient: bool = False,
) -> Policy:
    """Parse and validate an audit policy; raise PolicyError listing every problem.

    ``kubernetes_version`` (major, minor) enables version-dependent checks (group ``"*"`` is only
    valid from 1.36); None means the newest apiserver. ``lenient``: load what kube-apiserver
    loads (unknown fields and duplicate keys dropped as it drops them) and list those problems
    in ``Policy.dropped`` instead of raising; what the apiserver refuses still raises.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError([Problem(source, 1, 1, too_big(size))])
    decoder = _Decoder(source, kubernetes_version)
    root, later = compose(text, source)
    rules = decoder.policy(root, text)
    problems = sorted(decoder.problems + later, key=lambda p: (p.line, p.col))
    if rules is None or any(not p.tolerated or not lenient for p in problems):
        raise PolicyError(problems)
    return Policy(
        rules=rules,
        omit_stages=decoder.omit_stages,
        omit_managed_fields=bool(decoder.omit_managed_fields),
        text=text,
        source=source,
        name=decoder.name,
        annotations=tuple(decoder.annotations),
        dropped=tuple(problems),
    )
