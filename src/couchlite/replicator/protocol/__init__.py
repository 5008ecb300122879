"""The replication protocol without I/O: typed messages and the bookkeeping of a session.

Everything here is values in, values out -- no event loop, no sockets, no storage. The asyncio
workers of :mod:`couchlite.replicator` receive BLIP messages, hand them to these parsers and
state objects, and send what they build; so every exchange ("given this ``changes``, answer
that") can be driven, and tested, by plain function calls.

* :mod:`~couchlite.replicator.protocol.wire`: the outgoing-message value and JSON body checks.
* :mod:`~couchlite.replicator.protocol.changes`: ``subChanges``, ``changes``,
  ``proposeChanges`` and their replies.
* :mod:`~couchlite.replicator.protocol.revs`: ``rev``, ``norev``, ``getAttachment``.
* :mod:`~couchlite.replicator.protocol.checkpoints`: ``getCheckpoint``, ``setCheckpoint``,
  ``getCollections``, checkpoint bodies, IDs and their reconciliation.
* :mod:`~couchlite.replicator.protocol.sequences`: which sequence a checkpoint may claim.
* :mod:`~couchlite.replicator.protocol.revisions`: revisions requested from the peer and
  revisions the peer pushed (not announced back).
* :mod:`~couchlite.replicator.protocol.pull`: which announced revisions a puller wants.
* :mod:`~couchlite.replicator.protocol.push`: what each answer to a proposal means.
* :mod:`~couchlite.replicator.protocol.conflicts`: Couchbase Lite's default conflict rule.
"""
