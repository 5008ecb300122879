"""The database: documents, collections and blobs, and the store the replicator syncs it through
(:func:`replication_store`)."""

from couchlite.database.replication_access import replication_store

__all__ = ["replication_store"]
