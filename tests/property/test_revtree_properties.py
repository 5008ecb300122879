"""Properties of revision trees: order independence, idempotence, pruning, encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from couchlite.model.revtree import RevTree

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def branches(draw: st.DrawFn) -> list[tuple[list[str], bool]]:
    """Random histories (newest first) sharing random prefixes, each with a deleted flag.

    Each branch forks from a random point of an earlier one (or starts a new root) and adds at
    least one revision of its own, so the set covers shared ancestors, disjoint roots, a branch
    extending another, and equal-generation ties broken by the random leading digest digit.
    """
    count = draw(st.integers(1, 5))
    out: list[tuple[list[str], bool]] = []
    for n in range(count):
        prefix: list[str] = []
        if out and draw(st.booleans()):
            base = draw(st.sampled_from(out))[0]
            prefix = base[len(base) - draw(st.integers(1, len(base))) :]  # its oldest revisions
        gen = len(prefix)
        history = prefix
        for _ in range(draw(st.integers(1, 6))):
            gen += 1
            digit = draw(st.sampled_from("0123456789abcdef"))
            history = [f"{gen}-{digit * 36}{n:02x}{gen:02x}", *history]  # unique per (n, gen)
        out.append((history, draw(st.booleans())))
    return out


def build(entries: list[tuple[list[str], bool]]) -> RevTree:
    tree = RevTree()
    for seq, (history, deleted) in enumerate(entries, 1):
        tree.insert_history(
            history, b'{"h":"%s"}' % history[0].encode(), deleted=deleted, sequence=seq
        )
    return tree


def expected_leaves(entries: list[tuple[list[str], bool]]) -> set[str]:
    revs = {rev for history, _ in entries for rev in history}
    parents = {history[i + 1] for history, _ in entries for i in range(len(history) - 1)}
    return revs - parents


@SETTINGS
@given(entries=branches(), data=st.data())
def test_insertion_order_does_not_change_winner(entries, data) -> None:
    reordered = data.draw(st.permutations(entries))
    one, two = build(entries), build(reordered)
    assert one.current.rev_id == two.current.rev_id
    assert {r.rev_id for r in one.leaves()} == {r.rev_id for r in two.leaves()}
    assert one.is_conflicted == two.is_conflicted
    assert {r.rev_id for r in one.conflicting_leaves()} == {
        r.rev_id for r in two.conflicting_leaves()
    }
    # and both agree with the rule computed independently of the tree
    deleted = {}
    for history, flag in entries:
        deleted.setdefault(history[0], flag)
    leaves = expected_leaves(entries)
    assert {r.rev_id for r in one.leaves()} == leaves

    def key(rev: str) -> tuple[bool, int, str]:
        gen, digest = rev.split("-")
        return (not deleted.get(rev, False), int(gen), digest)

    assert one.current.rev_id == max(leaves, key=key)
    assert one.is_conflicted == (sum(not deleted.get(r, False) for r in leaves) > 1)


@SETTINGS
@given(entries=branches(), data=st.data())
def test_history_insertion_is_idempotent(entries, data) -> None:
    tree = build(entries)
    before = tree.encode()
    history, deleted = data.draw(st.sampled_from(entries))
    result = tree.insert_history(history, b"ignored", deleted=not deleted, sequence=999)
    assert result.added == 0
    assert tree.encode() == before
    cut = data.draw(st.integers(0, len(history) - 1))
    result = tree.insert_history(history[cut:], b"ignored", deleted=False, sequence=999)
    assert result.added == 0
    assert tree.encode() == before


@SETTINGS
@given(entries=branches(), depth=st.integers(1, 8))
def test_pruning_keeps_leaves(entries, depth) -> None:
    tree = build(entries)
    leaves_before = {r.rev_id for r in tree.leaves()}
    winner = tree.current.rev_id
    conflicted = tree.is_conflicted
    full_histories = {leaf: tree.history(leaf) for leaf in leaves_before}
    removed = tree.prune(depth)
    assert removed >= 0
    for leaf in leaves_before:
        rev = tree.get(leaf)
        assert rev is not None
        assert tree.is_leaf(rev)
    assert {r.rev_id for r in tree.leaves()} == leaves_before
    assert tree.current.rev_id == winner
    assert tree.is_conflicted == conflicted
    for leaf, history in full_histories.items():
        kept = tree.history(leaf)
        assert len(kept) <= depth
        assert kept == history[: len(kept)]  # a prefix of the old history: no re-parenting
    # the tree is still well formed
    for i, rev in enumerate(tree.revs):
        assert rev.parent < i
        assert tree.get(rev.rev_id) is rev
    assert tree.prune(depth) == 0


@SETTINGS
@given(entries=branches(), omit=st.booleans())
def test_encode_decode_round_trip(entries, omit) -> None:
    tree = build(entries)
    current = tree.current
    data = tree.encode(omit_body_of=current if omit else None)
    decoded = RevTree.decode(data, current.body if omit else None)
    assert [(r.rev_id, r.parent, r.flags, r.sequence, r.body) for r in decoded.revs] == [
        (r.rev_id, r.parent, r.flags, r.sequence, r.body) for r in tree.revs
    ]
    assert decoded.current.rev_id == current.rev_id
    assert decoded.encode() == tree.encode()


@SETTINGS
@given(entries=branches(), gen=st.integers(1, 12), digit=st.sampled_from("0123456789abcdef"))
def test_known_ancestors_are_older(entries, gen, digit) -> None:
    tree = build(entries)
    target = f"{gen}-{digit * 40}"
    found = tree.known_ancestors(target)
    assert len(found) == len(set(found))
    for rev_id in found:
        rev = tree.get(rev_id)
        assert rev is not None
        assert rev.generation < gen
        assert tree.is_leaf(rev) or rev.body is not None
    assert [tree.get(r).generation for r in found] == sorted(  # type: ignore[union-attr]
        (tree.get(r).generation for r in found),  # type: ignore[union-attr]
        reverse=True,
    )
