"""Revision trees: insertion, winner, conflicts, history, bodies, pruning, encoding."""

from __future__ import annotations

import orjson
import pytest

from couchlite.errors import ConflictError, CorruptDatabaseError, InvalidArgumentError, LiteCoreCode
from couchlite.model.revid import generation, new_rev_id
from couchlite.model.revtree import DELETED, KEEP_BODY, RevTree


def rid(gen: int, tag: str) -> str:
    """A revision ID whose digest is ``tag`` (one hex digit) repeated: digests order by tag."""
    return f"{gen}-{tag * 40}"


def chain(tag: str, newest: int, oldest: int = 1) -> list[str]:
    """A history newest first: ``rid(newest, tag) .. rid(oldest, tag)``."""
    return [rid(g, tag) for g in range(newest, oldest - 1, -1)]


def linear(n: int, tag: str = "a") -> RevTree:
    tree = RevTree()
    tree.insert_history(chain(tag, n), b'{"n":%d}' % n, deleted=False, sequence=1)
    return tree


def leaf_ids(tree: RevTree) -> set[str]:
    return {rev.rev_id for rev in tree.leaves()}


def bodies(tree: RevTree) -> dict[str, bytes | None]:
    return {rev.rev_id: rev.body for rev in tree.revs}


# --- local edits -----------------------------------------------------------------------------


def test_add_revision_linear_history() -> None:
    tree = RevTree()
    r1 = tree.add_revision(None, b'{"v":1}', deleted=False, sequence=1)
    r2 = tree.add_revision(r1.rev_id, b'{"v":2}', deleted=False, sequence=2)
    r3 = tree.add_revision(r2.rev_id, b'{"v":3}', deleted=False, sequence=3)
    assert [generation(r.rev_id) for r in (r1, r2, r3)] == [1, 2, 3]
    assert r2.rev_id == new_rev_id(r1.rev_id, False, b'{"v":2}')
    assert tree.current is r3
    assert tree.history(r3.rev_id) == [r3.rev_id, r2.rev_id, r1.rev_id]
    assert leaf_ids(tree) == {r3.rev_id}
    assert not tree.is_conflicted
    assert tree.parent_of(r3) is r2
    assert tree.parent_of(r1) is None
    assert len(tree) == 3
    assert r2.rev_id in tree and "1-nope" not in tree
    assert tree.get(r2.rev_id) is r2 and tree.get("nope") is None
    assert tree.is_leaf(r3) and not tree.is_leaf(r2)
    assert r3.sequence == 3 and r3.generation == 3


def test_single() -> None:
    tree = RevTree.single(rid(1, "a"), DELETED, 7, b"{}")
    assert tree.current.rev_id == rid(1, "a")
    assert tree.current.deleted
    assert tree.current.sequence == 7
    assert tree.leaves() == [tree.current]


def test_add_revision_deleted() -> None:
    tree = linear(2)
    tomb = tree.add_revision(rid(2, "a"), b"{}", deleted=True, sequence=5)
    assert tomb.deleted and tomb.flags == DELETED
    assert tree.current is tomb
    assert tomb.rev_id == new_rev_id(rid(2, "a"), True, b"{}")


def test_add_revision_non_leaf_parent_conflicts() -> None:
    tree = linear(3)
    with pytest.raises(ConflictError, match="not a leaf"):
        tree.add_revision(rid(2, "a"), b"{}", deleted=False, sequence=9)
    assert len(tree) == 3
    rev = tree.add_revision(rid(2, "a"), b'{"b":1}', deleted=False, sequence=9, allow_conflict=True)
    assert tree.parent_of(rev) is tree.get(rid(2, "a"))
    assert leaf_ids(tree) == {rid(3, "a"), rev.rev_id}
    assert tree.is_conflicted


def test_add_revision_unknown_parent() -> None:
    tree = linear(1)
    with pytest.raises(ConflictError, match="unknown parent"):
        tree.add_revision(rid(1, "b"), b"{}", deleted=False, sequence=2)


def test_add_root_to_non_empty_tree() -> None:
    tree = linear(1)
    with pytest.raises(ConflictError):
        tree.add_revision(None, b"{}", deleted=False, sequence=2)
    root = tree.add_revision(None, b'{"x":1}', deleted=False, sequence=2, allow_conflict=True)
    assert root.parent == -1
    assert len(tree.leaves()) == 2


def test_add_revision_duplicate_id() -> None:
    tree = linear(2)
    with pytest.raises(ConflictError, match="already exists"):
        tree.add_revision(
            rid(1, "a"), b"{}", deleted=False, sequence=3, rev_id=rid(2, "a"), allow_conflict=True
        )


def test_add_revision_explicit_id() -> None:
    tree = linear(2)
    rev = tree.add_revision(rid(2, "a"), b"{}", deleted=False, sequence=3, rev_id=rid(3, "c"))
    assert tree.current is rev and rev.rev_id == rid(3, "c")


@pytest.mark.parametrize("bad", [rid(2, "c"), rid(4, "c"), "3-xyz"])
def test_add_revision_explicit_id_validated(bad: str) -> None:
    # regression: a caller-chosen ID with the wrong generation broke the tree's invariants
    tree = linear(2)
    with pytest.raises(InvalidArgumentError) as info:
        tree.add_revision(rid(2, "a"), b"{}", deleted=False, sequence=3, rev_id=bad)
    assert info.value.code == LiteCoreCode.BAD_REVISION_ID
    assert len(tree) == 2


def test_explicit_root_id_must_be_generation_one() -> None:
    with pytest.raises(InvalidArgumentError):
        RevTree().add_revision(None, b"{}", deleted=False, sequence=1, rev_id=rid(2, "a"))


# --- inserting histories -----------------------------------------------------------------------


def test_insert_into_empty_tree() -> None:
    tree = RevTree()
    result = tree.insert_history(chain("a", 3), b'{"x":1}', deleted=False, sequence=4)
    assert result.added == 3
    assert result.common_ancestor is None
    assert not result.created_conflict
    assert result.revision.rev_id == rid(3, "a")
    assert tree.history(rid(3, "a")) == chain("a", 3)
    assert [r.sequence for r in tree.revs] == [4, 4, 4]
    # ancestors come without bodies
    assert bodies(tree) == {rid(1, "a"): None, rid(2, "a"): None, rid(3, "a"): b'{"x":1}'}


def test_insert_extends_leaf() -> None:
    tree = linear(2)
    result = tree.insert_history(
        [rid(4, "a"), rid(3, "a"), *chain("a", 2)], b"{}", deleted=False, sequence=2
    )
    assert result.added == 2
    assert result.common_ancestor == rid(2, "a")
    assert not result.created_conflict
    assert leaf_ids(tree) == {rid(4, "a")}
    assert len(tree) == 4


def test_insert_with_shared_ancestor_creates_conflict() -> None:
    tree = linear(3, "a")
    result = tree.insert_history(
        [rid(3, "b"), rid(2, "b"), rid(1, "a")], b'{"b":1}', deleted=False, sequence=2
    )
    assert result.created_conflict
    assert result.common_ancestor == rid(1, "a")
    assert result.added == 2
    assert leaf_ids(tree) == {rid(3, "a"), rid(3, "b")}
    assert tree.is_conflicted
    assert tree.current.rev_id == rid(3, "b")  # same generation: greater digest
    assert [r.rev_id for r in tree.conflicting_leaves()] == [rid(3, "a")]
    assert tree.history(rid(3, "b")) == [rid(3, "b"), rid(2, "b"), rid(1, "a")]


def test_insert_with_no_common_ancestor() -> None:
    tree = linear(2, "a")
    result = tree.insert_history(chain("b", 2), b'{"b":1}', deleted=False, sequence=2)
    assert result.created_conflict
    assert result.common_ancestor is None
    assert result.added == 2
    roots = [r.rev_id for r in tree.revs if r.parent == -1]
    assert roots == [rid(1, "a"), rid(1, "b")]
    assert tree.is_conflicted
    assert tree.current.rev_id == rid(2, "b")


def test_insert_existing_is_noop() -> None:
    tree = linear(3)
    before = tree.encode()
    result = tree.insert_history(chain("a", 3), b"other", deleted=True, sequence=99)
    assert result.added == 0
    assert result.common_ancestor == rid(3, "a")
    assert result.revision is tree.get(rid(3, "a"))
    assert not result.created_conflict
    assert tree.encode() == before
    # a prefix (an ancestor) too
    assert tree.insert_history(chain("a", 2), b"x", deleted=False, sequence=99).added == 0
    assert tree.encode() == before


def test_insert_deleted() -> None:
    tree = linear(2)
    result = tree.insert_history([rid(3, "a"), rid(2, "a")], b"{}", deleted=True, sequence=3)
    assert result.revision.deleted
    assert tree.current.rev_id == rid(3, "a") and tree.current.deleted
    assert not tree.get(rid(2, "a")).deleted  # type: ignore[union-attr]


def test_insert_stops_at_first_known_revision() -> None:
    tree = linear(2, "a")
    # the older part of the history disagrees with ours: LiteCore stops at the first known
    result = tree.insert_history(
        [rid(3, "c"), rid(2, "a"), rid(1, "f")], b"{}", deleted=False, sequence=2
    )
    assert result.added == 1
    assert rid(1, "f") not in tree
    assert tree.history(rid(3, "c")) == [rid(3, "c"), *chain("a", 2)]


@pytest.mark.parametrize(
    "history",
    [
        [],
        [rid(3, "a"), rid(1, "a")],  # gap
        [rid(2, "a"), rid(3, "a")],  # increasing
        [rid(2, "a"), rid(2, "b")],  # repeated generation
        [rid(2, "a"), "1-bogus"],
        ["nonsense"],
    ],
)
def test_insert_invalid_history(history: list[str]) -> None:
    tree = linear(1)
    before = tree.encode()
    with pytest.raises(InvalidArgumentError):
        tree.insert_history(history, b"{}", deleted=False, sequence=2)
    assert tree.encode() == before


def test_insert_gap_reports_bad_revision_id() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RevTree().insert_history([rid(3, "a"), rid(1, "a")], b"{}", deleted=False, sequence=1)
    assert info.value.code == LiteCoreCode.BAD_REVISION_ID


# --- the winner --------------------------------------------------------------------------------


def test_live_beats_deleted_even_with_higher_generation() -> None:
    tree = linear(2, "a")
    tree.insert_history(
        [rid(5, "f"), *chain("f", 4, 2), rid(1, "a")], b"{}", deleted=True, sequence=2
    )
    assert tree.current.rev_id == rid(2, "a")
    assert not tree.is_conflicted  # only one live leaf
    assert tree.conflicting_leaves() == []


def test_higher_generation_beats_greater_digest() -> None:
    tree = linear(3, "0")
    tree.insert_history([rid(2, "f"), rid(1, "0")], b"{}", deleted=False, sequence=2)
    assert tree.current.rev_id == rid(3, "0")


def test_greater_digest_wins_tie() -> None:
    tree = linear(1, "5")
    tree.insert_history([rid(2, "4"), rid(1, "5")], b"{}", deleted=False, sequence=2)
    tree.insert_history([rid(2, "9"), rid(1, "5")], b"{}", deleted=False, sequence=3)
    tree.insert_history([rid(2, "7"), rid(1, "5")], b"{}", deleted=False, sequence=4)
    assert tree.current.rev_id == rid(2, "9")
    assert {r.rev_id for r in tree.conflicting_leaves()} == {rid(2, "4"), rid(2, "7")}


def test_all_deleted_highest_tombstone_wins() -> None:
    tree = RevTree()
    tree.insert_history(chain("a", 2), b"{}", deleted=True, sequence=1)
    tree.insert_history([rid(3, "b"), rid(2, "b"), rid(1, "a")], b"{}", deleted=True, sequence=2)
    assert tree.current.rev_id == rid(3, "b")
    assert tree.current.deleted
    assert not tree.is_conflicted


def test_deleting_winner_hands_over_to_other_branch() -> None:
    tree = linear(3, "a")
    tree.insert_history([rid(3, "f"), rid(2, "f"), rid(1, "a")], b"{}", deleted=False, sequence=2)
    assert tree.current.rev_id == rid(3, "f")
    tomb = tree.add_revision(rid(3, "f"), b"{}", deleted=True, sequence=3)
    assert tree.current.rev_id == rid(3, "a")
    assert not tree.is_conflicted
    assert tomb in tree.leaves()


def test_conflict_resolved_by_tombstoning_loser() -> None:
    tree = linear(2, "a")
    tree.insert_history([rid(2, "b"), rid(1, "a")], b'{"b":1}', deleted=False, sequence=2)
    assert tree.is_conflicted
    loser = tree.conflicting_leaves()[0]
    tree.add_revision(loser.rev_id, b"{}", deleted=True, sequence=3)
    assert not tree.is_conflicted
    assert tree.current.rev_id == rid(2, "b")


# --- history / known ancestors -----------------------------------------------------------------


def test_history_order_and_limit() -> None:
    tree = linear(6)
    assert tree.history(rid(6, "a")) == chain("a", 6)
    assert tree.history(rid(6, "a"), limit=3) == chain("a", 6, 4)
    assert tree.history(rid(4, "a"), limit=10) == chain("a", 4)
    assert tree.history(rid(6, "a"), limit=0) == []
    assert tree.history(rid(6, "b")) == []


def test_known_ancestors() -> None:
    tree = linear(3, "a")  # only the leaf 3-a has a body
    tree.insert_history([rid(2, "b"), rid(1, "a")], b"{}", deleted=False, sequence=2)
    tree.set_flag(rid(1, "a"), KEEP_BODY)
    tree.get(rid(1, "a")).body = b"{}"  # type: ignore[union-attr]
    assert tree.known_ancestors(rid(4, "c")) == [rid(3, "a"), rid(2, "b"), rid(1, "a")]
    assert tree.known_ancestors(rid(3, "c")) == [rid(2, "b"), rid(1, "a")]
    assert tree.known_ancestors(rid(4, "c"), limit=1) == [rid(3, "a")]
    assert tree.known_ancestors(rid(1, "c")) == []


def test_known_ancestors_skip_bodiless_interior() -> None:
    tree = linear(5)
    assert tree.get(rid(3, "a")).body is None  # type: ignore[union-attr]
    assert tree.known_ancestors(rid(9, "b")) == [rid(5, "a")]  # 4-a has no body either
    tree.add_revision(rid(5, "a"), b"{}", deleted=False, sequence=2)
    assert tree.known_ancestors(rid(9, "b"))[1] == rid(5, "a")  # now the current's parent


# --- bodies --------------------------------------------------------------------------------------


def test_bodies_kept_for_leaves_and_current_parent() -> None:
    tree = RevTree()
    revs = [tree.add_revision(None, b'{"v":1}', deleted=False, sequence=1)]
    for v in range(2, 6):
        revs.append(tree.add_revision(revs[-1].rev_id, b'{"v":%d}' % v, deleted=False, sequence=v))
    assert [r.body for r in revs] == [None, None, None, b'{"v":4}', b'{"v":5}']


def test_current_parent_body_dropped_when_current_is_tombstone() -> None:
    tree = RevTree()
    r1 = tree.add_revision(None, b'{"v":1}', deleted=False, sequence=1)
    r2 = tree.add_revision(r1.rev_id, b'{"v":2}', deleted=False, sequence=2)
    assert r1.body == b'{"v":1}'
    tomb = tree.add_revision(r2.rev_id, b"{}", deleted=True, sequence=3)
    assert r2.body is None
    assert r1.body is None
    assert tomb.body == b"{}"


def test_conflicting_leaves_keep_bodies() -> None:
    tree = linear(2, "a")
    tree.insert_history(
        [rid(3, "b"), rid(2, "b"), rid(1, "a")], b'{"b":3}', deleted=False, sequence=2
    )
    tree.add_revision(rid(3, "b"), b'{"b":4}', deleted=False, sequence=3)
    # the losing leaf keeps its body; the winner's parent too
    assert tree.get(rid(2, "a")).body == b'{"n":2}'  # type: ignore[union-attr]
    assert tree.get(rid(3, "b")).body == b'{"b":3}'  # type: ignore[union-attr]
    assert tree.get(rid(2, "b")).body is None  # type: ignore[union-attr]


def test_keep_body_flag() -> None:
    tree = RevTree()
    r1 = tree.add_revision(None, b'{"v":1}', deleted=False, sequence=1)
    tree.set_flag(r1.rev_id, KEEP_BODY)
    r2 = tree.add_revision(r1.rev_id, b'{"v":2}', deleted=False, sequence=2)
    r3 = tree.add_revision(r2.rev_id, b'{"v":3}', deleted=False, sequence=3)
    tree.add_revision(r3.rev_id, b'{"v":4}', deleted=False, sequence=4)
    assert r1.body == b'{"v":1}'
    assert r2.body is None
    tree.set_flag(r1.rev_id, KEEP_BODY, on=False)
    assert r1.flags & KEEP_BODY == 0


def test_set_flag_unknown() -> None:
    with pytest.raises(InvalidArgumentError):
        linear(1).set_flag(rid(1, "b"), KEEP_BODY)


# --- pruning -------------------------------------------------------------------------------------


def test_prune_linear() -> None:
    tree = linear(30)
    assert tree.prune(20) == 10
    assert len(tree) == 20
    assert tree.history(rid(30, "a")) == chain("a", 30, 11)
    assert tree.revs[0].parent == -1
    assert tree.current.rev_id == rid(30, "a")
    assert tree.prune(20) == 0


def test_prune_small_tree_untouched() -> None:
    tree = linear(5)
    before = tree.encode()
    assert tree.prune(5) == 0
    assert tree.prune(20) == 0
    assert tree.encode() == before


def test_prune_invalid_depth() -> None:
    with pytest.raises(InvalidArgumentError):
        linear(3).prune(0)


def test_prune_depth_one_keeps_only_leaves() -> None:
    tree = linear(5, "a")
    tree.insert_history([rid(3, "b"), rid(2, "b"), rid(1, "a")], b"{}", deleted=False, sequence=2)
    assert len(tree) == 7
    assert tree.prune(1) == 5
    assert leaf_ids(tree) == {rid(5, "a"), rid(3, "b")}
    assert len(tree) == 2
    assert all(r.parent == -1 for r in tree.revs)


def test_prune_with_conflict_branch() -> None:
    tree = linear(30, "a")
    tree.insert_history(
        [rid(27, "b"), rid(26, "b"), *chain("a", 25)], b"{}", deleted=False, sequence=2
    )
    removed = tree.prune(20)
    assert removed == 10
    assert leaf_ids(tree) == {rid(30, "a"), rid(27, "b")}
    assert tree.history(rid(30, "a")) == chain("a", 30, 11)
    assert tree.history(rid(27, "b")) == [rid(27, "b"), rid(26, "b"), *chain("a", 25, 11)]


def test_prune_no_branch_deeper_than_max_depth() -> None:
    # regression: a revision near one leaf but too deep below another was kept, so side
    # branches (e.g. tombstoned conflict losers) pinned the main line: LiteCore removes it
    tree = linear(12, "a")
    for gen in range(1, 12):  # a side leaf off every revision of the main line
        tree.insert_history([rid(gen + 1, "f"), *chain("a", gen)], b"{}", deleted=True, sequence=2)
    leaves = leaf_ids(tree)
    tree.prune(3)
    assert leaf_ids(tree) == leaves
    for leaf in leaves:
        assert len(tree.history(leaf)) <= 3
    assert tree.history(rid(12, "a")) == chain("a", 12, 10)
    assert tree.current.rev_id == rid(12, "a")


def test_prune_keeps_tree_consistent() -> None:
    tree = linear(25)
    tree.prune(5)
    for i, rev in enumerate(tree.revs):
        assert rev.parent < i
        assert tree.get(rev.rev_id) is rev
    tree.add_revision(rid(25, "a"), b"{}", deleted=False, sequence=2)
    assert len(tree.history(tree.current.rev_id)) == 6


# --- removing branches -------------------------------------------------------------------------


def test_remove_branch() -> None:
    tree = linear(3, "a")
    tree.insert_history(
        [rid(4, "b"), rid(3, "b"), rid(2, "b"), rid(1, "a")], b"{}", deleted=False, sequence=2
    )
    assert tree.current.rev_id == rid(4, "b")
    assert tree.remove_branch(rid(4, "b")) == 3
    assert leaf_ids(tree) == {rid(3, "a")}
    assert tree.current.rev_id == rid(3, "a")
    assert not tree.is_conflicted
    assert rid(2, "b") not in tree and rid(1, "a") in tree
    assert tree.history(rid(3, "a")) == chain("a", 3)


def test_remove_branch_disjoint_root() -> None:
    tree = linear(2, "a")
    tree.insert_history(chain("b", 3), b"{}", deleted=False, sequence=2)
    assert tree.remove_branch(rid(2, "a")) == 2
    assert [r.rev_id for r in tree.revs] == list(reversed(chain("b", 3)))


def test_remove_branch_errors() -> None:
    tree = linear(3)
    with pytest.raises(InvalidArgumentError, match="only branch"):
        tree.remove_branch(rid(3, "a"))
    with pytest.raises(InvalidArgumentError, match="not a leaf"):
        tree.remove_branch(rid(2, "a"))
    with pytest.raises(InvalidArgumentError, match="not a leaf"):
        tree.remove_branch(rid(3, "b"))
    assert len(tree) == 3


# --- encoding ------------------------------------------------------------------------------------


def assert_same_tree(a: RevTree, b: RevTree) -> None:
    assert [(r.rev_id, r.parent, r.flags, r.sequence, r.body) for r in a.revs] == [
        (r.rev_id, r.parent, r.flags, r.sequence, r.body) for r in b.revs
    ]


def test_encode_decode_round_trip() -> None:
    tree = linear(3, "a")
    tree.insert_history([rid(2, "b"), rid(1, "a")], b'{"x":"a\nb"}\n', deleted=True, sequence=5)
    tree.add_revision(rid(3, "a"), bytes(range(256)), deleted=False, sequence=6)
    tree.set_flag(rid(1, "a"), KEEP_BODY)
    decoded = RevTree.decode(tree.encode())
    assert_same_tree(tree, decoded)
    assert decoded.current.rev_id == tree.current.rev_id
    assert decoded.encode() == tree.encode()


def test_encode_empty_body_differs_from_none() -> None:
    tree = RevTree.single(rid(1, "a"), 0, 1, b"")
    decoded = RevTree.decode(tree.encode())
    assert decoded.current.body == b""
    tree2 = RevTree.single(rid(1, "a"), 0, 1, None)
    assert RevTree.decode(tree2.encode()).current.body is None


def test_encode_omitting_current_body() -> None:
    tree = linear(3)
    current = tree.current
    data = tree.encode(omit_body_of=current)
    assert current.body is not None and current.body not in data
    assert RevTree.decode(data).current.body is None
    assert_same_tree(RevTree.decode(data, current.body), tree)


def test_decode_current_body_does_not_override_stored_body() -> None:
    tree = linear(2)
    assert RevTree.decode(tree.encode(), b"other").current.body == b'{"n":2}'


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no newline",
        b"[]\n",  # no revisions
        b"{}\n",
        b'"abcde"\n',
        b"[[\n",
        b'[["1-' + b"a" * 40 + b'",-1,0,1,5]]\nabc',  # body shorter than its length
        b'[["1-' + b"a" * 40 + b'",-1,0,1,2]]\nabc',  # trailing bytes
        b'[["1-' + b"a" * 40 + b'",-1,0,1]]\n',  # short row
        b'[["1-' + b"a" * 40 + b'",-1,0,1,-1,9]]\n',  # long row
        b"[1]\n",
        b'[["1-' + b"a" * 40 + b'",0,0,1,-1]]\n',  # own parent
        b'[["1-' + b"a" * 40 + b'",5,0,1,-1]]\n',  # parent out of range
        b'[["1-' + b"a" * 40 + b'",-2,0,1,-1]]\n',
        b'[["1-' + b"a" * 40 + b'","0",0,1,-1]]\n',
        b'[["1-' + b"a" * 40 + b'",-1,0,1,1.5]]\nx',
        b'[["1-' + b"a" * 40 + b'",-1,"0",1,-1]]\n',
        b"[[1,-1,0,1,-1]]\n",  # not a string ID
        b'[["1-' + b"a" * 40 + b'",-1,0,1,-1],["1-' + b"a" * 40 + b'",0,0,1,-1]]\n',  # duplicate
        b'[["2-' + b"a" * 40 + b'",1,0,1,-1],["1-' + b"a" * 40 + b'",-1,0,1,-1]]\n',  # forward
    ],
)
def test_decode_corrupt(data: bytes) -> None:
    # regression: bad parent indexes raised IndexError or built cyclic trees
    with pytest.raises(CorruptDatabaseError) as info:
        RevTree.decode(data)
    assert info.value.code == LiteCoreCode.CORRUPT_REVISION_DATA


def test_encoding_is_compact_json_then_bodies() -> None:
    tree = RevTree.single(rid(1, "a"), DELETED, 3, b"{}")
    head, _, tail = tree.encode().partition(b"\n")
    assert orjson.loads(head) == [[rid(1, "a"), -1, DELETED, 3, 2]]
    assert tail == b"{}"
