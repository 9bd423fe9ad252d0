"""How drift reasons travel as resource inputs so the preview diff reads right.

The engine shows an update's diff as old *inputs* against new inputs. If the reasons a repair acted
on stayed in the stored inputs, the next drift would be shown as "changed from" those stale reasons.
So a preview carries the reasons in `drift` (shown), and the real run of `up` carries them in
`repair` (hidden with hideDiffs) with `drift` empty: the stored inputs then hold `drift: []`, and
the provider stores both empty in its outputs, which is what the next diff compares against.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

HIDDEN = ["repair"]


def drift_props(reasons: Sequence[str]) -> dict[str, list[str]]:
    if pulumi.runtime.is_dry_run():
        return {"drift": list(reasons), "repair": []}
    return {"drift": [], "repair": list(reasons)}


def with_hidden(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(hide_diffs=HIDDEN))


def pending(props: dict[str, object]) -> list[str]:
    """The reasons in a property bag, wherever they travel; a state from before `drift` has none."""
    return [str(r) for key in ("drift", "repair") for r in (props.get(key) or [])]  # type: ignore[attr-defined]
