"""--shard i/n: every stack in exactly one shard, the same one on every run and every machine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from components.fleet.spec import Fleet, StackRef, shard, shard_of

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), unique=True, max_size=60)


@given(names=NAMES, n=st.integers(1, 12), waves=st.integers(1, 4))
def test_every_stack_in_exactly_one_shard_waves_kept(names, n, waves):
    fleet = Fleet(tuple(tuple(StackRef(x) for x in names[w::waves]) for w in range(waves)))
    shards = [shard(fleet, i, n) for i in range(1, n + 1)]
    seen = [s.name for sh in shards for s in sh.stacks]
    assert sorted(seen) == sorted(names)
    for sh in shards:
        assert len(sh.waves) == waves  # a shard keeps the wave structure (a wave may be empty)
        for w, wave in enumerate(sh.waves):
            assert {s.name for s in wave} <= {s.name for s in fleet.waves[w]}


def test_stable_across_runs_and_independent_of_the_other_stacks():
    # Pinned values: a change of the hash would move stacks between CI runners mid-rollout.
    assert {x: shard_of(x, 3) for x in ["a", "b", "c"]} == {"a": 2, "b": 2, "c": 3}


def test_shards_spread_a_large_fleet():
    counts = [0] * 4
    for i in range(400):
        counts[shard_of(f"cluster-{i}", 4) - 1] += 1
    assert min(counts) > 70, counts
