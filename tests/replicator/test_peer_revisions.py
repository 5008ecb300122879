"""``PeerRevisions``: the passive side's record of what the peer pushed (no echo)."""

from __future__ import annotations

from couchlite.replicator.protocol.revisions import PeerRevisions


def test_nothing_is_recorded_unless_someone_watches() -> None:
    revs = PeerRevisions()
    revs.record("a", "1-aa", 5)
    assert len(revs) == 0 and not revs.is_echo("a", "1-aa")


def test_an_echo_is_the_same_revision_only() -> None:
    revs = PeerRevisions()
    revs.watch()
    revs.record("a", "1-aa", 5)
    assert revs.is_echo("a", "1-aa")
    assert not revs.is_echo("a", "2-bb") and not revs.is_echo("b", "1-aa")


def test_forgetting_stops_at_the_first_revision_stored_later() -> None:
    revs = PeerRevisions()
    revs.watch()
    for i, bound in enumerate([3, 3, 7, 9]):
        revs.record(f"d{i}", "1-aa", bound)
    revs.forget_through(2)
    assert len(revs) == 4
    revs.forget_through(3)
    assert len(revs) == 2 and not revs.is_echo("d0", "1-aa") and revs.is_echo("d2", "1-aa")
    revs.forget_through(100)
    assert len(revs) == 0


def test_a_document_pushed_again_moves_to_the_end() -> None:
    revs = PeerRevisions()
    revs.watch()
    revs.record("a", "1-aa", 3)
    revs.record("b", "1-bb", 4)
    revs.record("a", "2-aa", 6)  # stored later than b's revision
    revs.forget_through(4)
    assert len(revs) == 1 and revs.is_echo("a", "2-aa") and not revs.is_echo("b", "1-bb")
