"""Read kube-apiserver's arguments the way kube-apiserver itself reads them.

kube-apiserver parses its command line with spf13/pflag (v1.0.10 in Kubernetes 1.37) under cobra,
after component-base's `cli.run` has set `cliflag.WordSepNormalizeFunc` as the normaliser of every
flag name (pflag flag.go `parseArgs`/`parseLongArg`; component-base cli/run.go, cli/flag/flags.go;
cmd/kube-apiserver/app/server.go). So:

- a flag is `--name=value` or `--name value`: the next argument, whatever it looks like (even
  `--other`), unless the flag has a no-option default (every bool): bare, `--name` means
  `--name=true` and the next argument is not its value;
- `_` is `-` in a name: `--audit_policy_file` IS `--audit-policy-file` (case still matters);
- a flag given twice is applied twice, in order: the last one is in force (no audit flag is a list);
- `--` ends the flags. What follows it, and any argument that does not start with `-`, is a
  positional argument, which kube-apiserver refuses unless it is empty. A single-dash argument is
  a group of one-letter shorthands (`-v=2`); no audit flag has one.

Every reader of the apiserver's flags (the planner, the gate, drift, the policy-reference guard, the
readiness URL) goes through `parse`: a check on the text `--audit-` alone misses
`--audit_policy_file=/etc/old.yaml`, which the apiserver obeys.

Pure, stdlib only: this module travels in the node bundle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

AUDIT_PREFIX = "--audit-"

# kube-apiserver v1.37.2's flags that take no value when bare (pflag's NoOptDefVal is set: every
# bool, and --version), read from `kube-apiserver --help` (tests/unit/manifest/test_flags.py checks
# this list against the binary when it is there). Any other bare flag whose next argument starts
# with `-` leaves that argument in doubt (see `Flag.doubt`): a flag of a newer release, or a
# value-taking flag written `--flag --value`, and pflag would read the two cases differently.
NO_VALUE = frozenset(
    {
        "--aggregator-reject-forwarding-redirect",
        "--allow-privileged",
        "--anonymous-auth",
        "--audit-log-batch-throttle-enable",
        "--audit-log-compress",
        "--audit-log-truncate-enabled",
        "--audit-webhook-batch-throttle-enable",
        "--audit-webhook-truncate-enabled",
        "--contention-profiling",
        "--disable-http2-serving",
        "--emulation-forward-compatible",
        "--enable-aggregator-routing",
        "--enable-bootstrap-token-auth",
        "--enable-garbage-collector",
        "--enable-logs-handler",
        "--enable-priority-and-fairness",
        "--encryption-provider-config-automatic-reload",
        "--help",
        "--log-json-split-stream",
        "--log-text-split-stream",
        "--permit-address-sharing",
        "--permit-port-sharing",
        "--profiling",
        "--runtime-config-emulation-forward-compatible",
        "--service-account-extend-token-expiration",
        "--service-account-lookup",
        "--shutdown-send-retry-after",
        "--version",
        "--watch-cache",
    }
)


def normalize(name: str) -> str:
    """WordSepNormalizeFunc: every `_` in a flag name is a `-`."""
    return name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Flag:
    """One flag as kube-apiserver reads it, and where it was written."""

    name: str
    """Normalised, with its dashes: `--audit-policy-file` for `--audit_policy_file=...`."""
    value: str | None
    """`true` for a bare no-value flag; None when a value-taking flag is the last argument (refused)."""
    start: int
    stop: int
    """The arguments `start:stop` are this flag: one, or two for `--name value`."""
    text: str
    """As written: `--audit_policy_file=/p`, or `--audit-log-path /p` for the two-argument form."""
    doubt: str | None = None
    """Why this argument may not be a flag at all for kube-apiserver (it may be the value of the bare
    flag before it); None when it certainly is one."""

    @property
    def canonical(self) -> str:
        """`--name=value` with the normalised name: two spellings of one setting compare equal."""
        return self.name if self.value is None else f"{self.name}={self.value}"

    @property
    def is_audit(self) -> bool:
        return self.name.startswith(AUDIT_PREFIX)

    @property
    def may_take_next(self) -> bool:
        """Bare, and not known to take no value: kube-apiserver may read the next argument as its value."""
        return self.stop - self.start == 1 and "=" not in self.text and self.name not in NO_VALUE


@dataclasses.dataclass(frozen=True)
class CommandLine:
    flags: tuple[Flag, ...]
    terminator: int | None
    """Index of the `--` that ends the flags, if there is one."""

    def in_force(self) -> dict[str, Flag]:
        """Normalised name -> the occurrence kube-apiserver keeps (the last one)."""
        return {flag.name: flag for flag in self.flags}

    def value(self, name: str) -> str | None:
        flag = self.in_force().get(normalize(name))
        return None if flag is None else flag.value

    def audit(self) -> tuple[Flag, ...]:
        """Every occurrence of every audit flag, in any spelling, in order."""
        return tuple(flag for flag in self.flags if flag.is_audit)


def _text(arg: object) -> str:
    # The kubelet refuses a Pod whose command holds a non-string; as text it is at least never a flag.
    return arg if isinstance(arg, str) else str(arg)


def _dashed(arg: str) -> bool:
    """pflag reads this argument as a flag (or shorthands), not as a positional argument."""
    return len(arg) > 1 and arg[0] == "-"


def parse(args: Sequence[object]) -> CommandLine:
    """The flags in `args` (the arguments after the executable), as kube-apiserver reads them."""
    texts = [_text(a) for a in args]
    flags: list[Flag] = []
    doubt: str | None = None
    i = 0
    while i < len(texts):
        arg, here_doubt, doubt = texts[i], doubt, None
        if arg == "--":
            return CommandLine(tuple(flags), i)
        body = arg[2:]
        if not arg.startswith("--") or body[:1] in ("-", "="):
            # Positional, shorthands or bad syntax (`---x`, `--=x`): kube-apiserver either refuses it
            # or it is no long flag; in neither case does it set one.
            i += 1
            continue
        raw, eq, value = body.partition("=")
        name = "--" + normalize(raw)
        if eq:
            flags.append(Flag(name, value, i, i + 1, arg, here_doubt))
            i += 1
        elif name in NO_VALUE:
            flags.append(Flag(name, "true", i, i + 1, arg, here_doubt))
            i += 1
        elif i + 1 >= len(texts):
            flags.append(Flag(name, None, i, i + 1, arg, here_doubt))
            i += 1
        elif _dashed(texts[i + 1]) and not name.startswith(AUDIT_PREFIX):
            # Bare, and what follows looks like a flag: a value-taking flag would swallow it, a bool
            # would not. Unknown here, so it is read as a flag and marked as in doubt.
            flags.append(Flag(name, "true", i, i + 1, arg, here_doubt))
            doubt = (f"it follows the bare {arg}, which kube-apiserver reads as taking {texts[i + 1]!r} for its "
                     f"value unless {name} is a bool flag")
            i += 1
        else:
            flags.append(Flag(name, texts[i + 1], i, i + 2, f"{arg} {texts[i + 1]}", here_doubt))
            i += 2
    return CommandLine(tuple(flags), None)


def container_args(container: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Where each argument after the executable sits: (`command` or `args`, index).

    The process gets `command + args`; with no command, the image's entrypoint gets `args` alone
    (for kube-apiserver images that entrypoint is the binary itself).
    """
    command, args = container.get("command"), container.get("args")
    refs: list[tuple[str, int]] = []
    if isinstance(command, list) and command:
        refs += [("command", i) for i in range(1, len(command))]
    if isinstance(args, list):
        refs += [("args", i) for i in range(len(args))]
    return refs


def locate(container: Mapping[str, Any]) -> tuple[CommandLine, list[tuple[str, int]]]:
    """The container's flags, and where argument n of the command line sits (see container_args)."""
    refs = container_args(container)
    return parse([container[key][i] for key, i in refs]), refs


def parse_container(container: Mapping[str, Any]) -> CommandLine:
    return locate(container)[0]


def not_in_force(container: Mapping[str, Any], wanted: Sequence[str]) -> str | None:
    """Why the `--name=value` flags `wanted` are not what kube-apiserver reads from this container, or None."""
    in_force = parse_container(container).in_force()
    for flag in parse(wanted).flags:
        have = in_force.get(flag.name)
        if have is None or have.doubt or have.canonical != flag.canonical:
            why = have.doubt if have is not None and have.doubt else "another argument takes its place"
            return f"kube-apiserver would not read {flag.text} as a flag in force ({why})"
    return None


def parse_argv(argv: Sequence[object]) -> CommandLine:
    """A whole process command line (/proc/PID/cmdline): argv[0] is the executable."""
    return parse(list(argv)[1:])
