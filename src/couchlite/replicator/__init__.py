"""replicator: the replication engine (active and passive sessions) and its public API."""
