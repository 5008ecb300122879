"""The database: documents, collections and blobs, and the store the replicator syncs it through
(:func:`replication_store`). Other packages of couchlite import from here, not from the
modules inside."""

from couchlite.database.collection import Collection
from couchlite.database.database import Database
from couchlite.database.document import Document, MutableDocument
from couchlite.database.replication_access import replication_store

__all__ = ["Collection", "Database", "Document", "MutableDocument", "replication_store"]
