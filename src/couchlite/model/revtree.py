"""Revision trees, as Couchbase Lite 3.x keeps them (notes §5.1, §8).

A document is a tree of revisions. Local edits add a child to the current revision; replication
inserts a revision *with its history* (newest first), grafting the missing ancestors under the
newest one we already have, which may start a second branch: a conflict. Every leaf is a branch
tip; the **current** revision (the winner) is chosen by Couchbase Lite's rule:

1. live leaves beat deleted leaves (a tombstone wins only when every branch is deleted);
2. then the higher generation;
3. then the greater revision ID digest.

A document is *conflicted* when a second live leaf exists besides the winner.

Bodies: the current revision and every other leaf keep their bodies (a conflict must be
resolvable); so does the current revision's parent -- the base a delta will be computed against
-- and any revision flagged ``KEEP_BODY`` (a revision a peer is known to have). Other interior
bodies are dropped as the tree grows. ``prune(max_depth)`` removes, as LiteCore does, every revision
more than ``max_depth`` generations away from a leaf descending from it, so that no branch is deeper
than ``max_depth``; leaves are never pruned (a side branch may be left without ancestors).

Nodes live in a list in which a parent always precedes its children; ``parent`` is an index.

Encoding (``encode``/``decode``): a compact JSON array of ``[rev_id, parent, flags, sequence,
body_length]`` rows (``body_length`` -1 for no body), a newline, then the bodies concatenated --
so bodies are neither escaped nor copied into JSON strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from couchlite.errors import (
    ConflictError,
    CorruptDatabaseError,
    InvalidArgumentError,
    LiteCoreCode,
)
from couchlite.model.revid import generation, new_rev_id, parse_rev_id, rev_sort_key

DELETED = 0x01
#: keep this revision's body even when it is not a leaf (a peer has it: a delta base)
KEEP_BODY = 0x02


@dataclass(slots=True)
class Revision:
    rev_id: str
    parent: int
    flags: int
    sequence: int
    body: bytes | None

    @property
    def deleted(self) -> bool:
        return bool(self.flags & DELETED)

    @property
    def generation(self) -> int:
        return generation(self.rev_id)


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What ``RevTree.insert_history`` did."""

    revision: Revision
    #: how many revisions were added (0: we already had it)
    added: int
    #: the newest revision of the history we already had, if any
    common_ancestor: str | None
    #: the insertion started a new branch beside an existing one
    created_conflict: bool


class RevTree:
    __slots__ = ("_index", "_is_leaf", "revs")

    def __init__(self, revs: list[Revision] | None = None) -> None:
        self.revs: list[Revision] = revs if revs is not None else []
        self._reindex()

    # --- construction and encoding ------------------------------------------------------

    @classmethod
    def single(cls, rev_id: str, flags: int, sequence: int, body: bytes | None) -> RevTree:
        return cls([Revision(rev_id, -1, flags, sequence, body)])

    def encode(self, omit_body_of: Revision | None = None) -> bytes:
        rows = []
        bodies = []
        for rev in self.revs:
            body = None if rev is omit_body_of else rev.body
            rows.append(
                (rev.rev_id, rev.parent, rev.flags, rev.sequence, -1 if body is None else len(body))
            )
            if body is not None:
                bodies.append(body)
        return orjson.dumps(rows) + b"\n" + b"".join(bodies)

    @classmethod
    def decode(cls, data: bytes, current_body: bytes | None = None) -> RevTree:
        """Decode ``encode``'s output; ``current_body`` fills the winner's omitted body."""
        try:
            split = data.index(b"\n")
            rows = orjson.loads(data[:split])
            pos = split + 1
            if not isinstance(rows, list):
                raise ValueError("not an array of revisions")
            revs: list[Revision] = []
            for rev_id, parent, flags, sequence, length in rows:
                if not (
                    isinstance(rev_id, str)
                    and type(parent) is int
                    and -1 <= parent < len(revs)  # a parent precedes its children
                    and type(flags) is int
                    and type(sequence) is int
                    and type(length) is int
                ):
                    raise ValueError(f"bad revision row {len(revs)}")
                if length >= 0:
                    body: bytes | None = data[pos : pos + length]
                    pos += length
                else:
                    body = None
                revs.append(Revision(rev_id, parent, flags, sequence, body))
            if pos != len(data) or not revs:
                raise ValueError("length mismatch")
            if len({rev.rev_id for rev in revs}) != len(revs):
                raise ValueError("duplicate revision IDs")
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise CorruptDatabaseError(
                f"corrupt revision tree: {exc}", code=LiteCoreCode.CORRUPT_REVISION_DATA
            ) from exc
        tree = cls(revs)
        if current_body is not None:
            current = tree.current
            if current.body is None:
                current.body = current_body
        return tree

    def _reindex(self) -> None:
        self._index = {rev.rev_id: i for i, rev in enumerate(self.revs)}
        is_leaf = [True] * len(self.revs)
        for rev in self.revs:
            if rev.parent >= 0:
                is_leaf[rev.parent] = False
        self._is_leaf = is_leaf

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.revs)

    def __contains__(self, rev_id: object) -> bool:
        return rev_id in self._index

    def get(self, rev_id: str) -> Revision | None:
        i = self._index.get(rev_id)
        return None if i is None else self.revs[i]

    def is_leaf(self, rev: Revision) -> bool:
        return self._is_leaf[self._index[rev.rev_id]]

    def leaves(self) -> list[Revision]:
        return [rev for rev, leaf in zip(self.revs, self._is_leaf, strict=True) if leaf]

    def parent_of(self, rev: Revision) -> Revision | None:
        return self.revs[rev.parent] if rev.parent >= 0 else None

    @staticmethod
    def _winner_key(rev: Revision) -> tuple[bool, int, str]:
        gen, digest = rev_sort_key(rev.rev_id)
        return (not rev.flags & DELETED, gen, digest)

    @property
    def current(self) -> Revision:
        """The winning revision (Couchbase Lite 3.x rule; see the module docstring)."""
        if len(self.revs) == 1:
            return self.revs[0]
        return max(self.leaves(), key=self._winner_key)

    @property
    def is_conflicted(self) -> bool:
        live = [rev for rev in self.leaves() if not rev.flags & DELETED]
        return len(live) > 1

    def conflicting_leaves(self) -> list[Revision]:
        """Live leaves other than the winner: the branches a resolver must merge."""
        winner = self.current
        return [r for r in self.leaves() if r is not winner and not r.flags & DELETED]

    def history(self, rev_id: str, limit: int | None = None) -> list[str]:
        """``rev_id`` and its ancestors, newest first (at most ``limit`` entries)."""
        i = self._index.get(rev_id)
        out: list[str] = []
        while i is not None and i >= 0 and (limit is None or len(out) < limit):
            rev = self.revs[i]
            out.append(rev.rev_id)
            i = rev.parent
        return out

    def known_ancestors(self, rev_id: str, limit: int = 20) -> list[str]:
        """Revisions we hold that may be ancestors of ``rev_id`` (which we lack), best first.

        These are what a puller tells the sender it already has, so that the sender can cut the
        history short and pick a delta base: leaves and revisions with bodies, older than
        ``rev_id``, newest first.
        """
        gen = generation(rev_id)
        found = [
            rev
            for rev, leaf in zip(self.revs, self._is_leaf, strict=True)
            if rev.generation < gen and (leaf or rev.body is not None)
        ]
        found.sort(key=lambda r: rev_sort_key(r.rev_id), reverse=True)
        return [rev.rev_id for rev in found[:limit]]

    # --- updates ------------------------------------------------------------------------

    def add_revision(
        self,
        parent_rev_id: str | None,
        body: bytes,
        *,
        deleted: bool,
        sequence: int,
        allow_conflict: bool = False,
        rev_id: str | None = None,
    ) -> Revision:
        """Add a new local revision as a child of ``parent_rev_id`` (``None``: a new root).

        Without ``allow_conflict`` the parent must be a leaf, and a root may only start an empty
        tree; otherwise ``ConflictError``.
        """
        if parent_rev_id is None:
            parent = -1
            if self.revs and not allow_conflict:
                raise ConflictError("the document already has revisions")
        else:
            found = self._index.get(parent_rev_id)
            if found is None:
                raise ConflictError(f"unknown parent revision {parent_rev_id}")
            parent = found
            if not self._is_leaf[parent] and not allow_conflict:
                raise ConflictError(f"revision {parent_rev_id} is not a leaf")
        if rev_id is None:
            rev_id = new_rev_id(parent_rev_id, deleted, body)
        else:
            expected = generation(parent_rev_id) + 1 if parent_rev_id is not None else 1
            if parse_rev_id(rev_id)[0] != expected:
                raise InvalidArgumentError(
                    f"revision {rev_id} cannot be a child of {parent_rev_id}",
                    code=LiteCoreCode.BAD_REVISION_ID,
                )
        if rev_id in self._index:
            raise ConflictError(f"revision {rev_id} already exists")
        rev = Revision(rev_id, parent, DELETED if deleted else 0, sequence, body)
        self._append(rev)
        self._drop_stale_bodies()
        return rev

    def insert_history(
        self,
        history: Sequence[str],
        body: bytes | None,
        *,
        deleted: bool,
        sequence: int,
    ) -> InsertResult:
        """Insert ``history[0]`` (with ``body``) and its missing ancestors ``history[1:]``.

        ``history`` is newest first with generations decreasing by one. Inserting a revision
        that is already present changes nothing (idempotent).
        """
        if not history:
            raise InvalidArgumentError("empty revision history")
        gens = [parse_rev_id(rev_id)[0] for rev_id in history]
        for newer, older in itertools.pairwise(gens):
            if older != newer - 1:
                raise InvalidArgumentError(
                    f"revision history is not consecutive: {list(history)!r}",
                    code=LiteCoreCode.BAD_REVISION_ID,
                )
        existing = self.get(history[0])
        if existing is not None:
            return InsertResult(existing, 0, history[0], False)
        common = len(history)
        for i, rev_id in enumerate(history):
            if rev_id in self._index:
                common = i
                break
        if common < len(history):
            parent = self._index[history[common]]
            conflict = not self._is_leaf[parent]
            common_rev: str | None = history[common]
        else:
            parent = -1
            conflict = bool(self.revs)
            common_rev = None
        for i in range(common - 1, 0, -1):
            rev = Revision(history[i], parent, 0, sequence, None)
            self._append(rev)
            parent = len(self.revs) - 1
        rev = Revision(history[0], parent, DELETED if deleted else 0, sequence, body)
        self._append(rev)
        self._drop_stale_bodies()
        return InsertResult(rev, common, common_rev, conflict)

    def _append(self, rev: Revision) -> None:
        self._index[rev.rev_id] = len(self.revs)
        self.revs.append(rev)
        self._is_leaf.append(True)
        if rev.parent >= 0:
            self._is_leaf[rev.parent] = False

    def set_flag(self, rev_id: str, flag: int, on: bool = True) -> None:
        rev = self.get(rev_id)
        if rev is None:
            raise InvalidArgumentError(f"no revision {rev_id}")
        rev.flags = rev.flags | flag if on else rev.flags & ~flag

    def _drop_stale_bodies(self) -> None:
        current = self.current
        # a tombstone is never a delta target, so its parent's body is not needed as a base
        keep_parent = -1 if current.flags & DELETED else current.parent
        for i, rev in enumerate(self.revs):
            if (
                rev.body is not None
                and not self._is_leaf[i]
                and i != keep_parent
                and not rev.flags & KEEP_BODY
            ):
                rev.body = None

    def prune(self, max_depth: int) -> int:
        """Remove every revision more than ``max_depth`` generations from a leaf below it.

        This is LiteCore's rule: afterwards no branch is deeper than ``max_depth``, even where
        a revision is near one leaf but too far from another; leaves are never removed.
        """
        if max_depth < 1:
            raise InvalidArgumentError("max_depth must be at least 1")
        if len(self.revs) <= max_depth:
            return 0
        removed_at = [False] * len(self.revs)
        for i, leaf in enumerate(self._is_leaf):
            if not leaf:
                continue
            j = i
            for _ in range(max_depth):
                j = self.revs[j].parent
                if j < 0:
                    break
            # j: the first ancestor too far from this leaf; it and all its ancestors go
            while j >= 0 and not removed_at[j]:
                removed_at[j] = True
                j = self.revs[j].parent
        if not any(removed_at):
            return 0
        return self._keep_only([not removed for removed in removed_at])

    def remove_branch(self, leaf_rev_id: str) -> int:
        """Remove a leaf and its ancestors that no other leaf needs (a purged branch)."""
        i = self._index.get(leaf_rev_id)
        if i is None or not self._is_leaf[i]:
            raise InvalidArgumentError(f"{leaf_rev_id} is not a leaf of this tree")
        needed = [False] * len(self.revs)
        for j, leaf in enumerate(self._is_leaf):
            if leaf and j != i:
                k = j
                while k >= 0 and not needed[k]:
                    needed[k] = True
                    k = self.revs[k].parent
        if not any(needed):
            raise InvalidArgumentError("cannot remove the only branch of a document")
        return self._keep_only(needed)

    def _keep_only(self, keep: list[bool]) -> int:
        """Drop the revisions not marked in ``keep``; orphans become roots. Returns how many."""
        remap: dict[int, int] = {}
        kept: list[Revision] = []
        for i, rev in enumerate(self.revs):
            if keep[i]:
                remap[i] = len(kept)
                kept.append(rev)
        for rev in kept:
            rev.parent = remap.get(rev.parent, -1)
        removed = len(self.revs) - len(kept)
        self.revs = kept
        self._reindex()
        return removed
