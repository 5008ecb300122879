"""What change listeners receive (``CollectionChange``, ``DocumentChange``) and the
``ListenerToken`` that removes one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from couchlite.database._listeners import ChangeNotifier, ListenerEntry
    from couchlite.database.collection import Collection


@dataclass(frozen=True, slots=True)
class CollectionChange:
    """What a collection change listener receives: the documents of ``collection`` one
    committed transaction changed (saved, deleted, purged or expired).

    ``collection``: the ``Collection`` the listener was added to. ``document_ids``: the IDs of
    the changed documents. Couchbase Lite's ``CollectionChange``.
    """

    collection: Collection
    document_ids: list[str]


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """What a document change listener receives: document ``document_id`` of ``collection``
    was changed (saved, deleted, purged or expired) by a committed transaction.

    Couchbase Lite's ``DocumentChange``; read the document again to see its new state.
    """

    collection: Collection
    document_id: str


class ListenerToken:
    """Returned by ``add_*_listener``; ``remove()`` stops the notifications."""

    __slots__ = ("_remove",)

    def __init__(self, notifier: ChangeNotifier, listener: ListenerEntry) -> None:
        self._remove: Callable[[], None] = functools.partial(notifier.remove_listener, listener)

    @classmethod
    def _calling(cls, remove: Callable[[], None]) -> ListenerToken:
        """A token whose ``remove()`` calls ``remove`` (for listeners kept elsewhere, such as
        a live query's)."""
        token = cls.__new__(cls)
        token._remove = remove
        return token

    def remove(self) -> None:
        """Stop calling the listener (idempotent; safe from any thread, even the listener's).

        A commit being notified on another thread at that moment may still call it once.
        Couchbase Lite's ``ListenerToken.remove``."""
        self._remove()
