"""Where a database's data is kept.

* ``document_store``: ``DocumentStore``, the interface the database layer talks to;
* ``records``: the values it stores and hands out (records, change entries, commit batches);
* ``sqlite_store``: ``SQLiteStore``, the implementation in one SQLite file, with ``_connections``
  (writer thread, per-thread readers, background checkpoints), ``_schema`` (tables and
  migrations) and ``_commit`` (the SQL of one commit);
* ``blobstore``: blobs, one content-addressed file each.
"""
