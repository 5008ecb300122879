"""What each answer to a ``proposeChanges`` entry means for the pusher (notes §4.7, §8).

``0`` -> send the ``rev``; ``304`` -> the peer has it; ``{"status": 409, "rev": X}`` -> the
peer's current revision is X: our very revision (the peer has it), an ancestor of ours
(propose again with X as server revision, at most ``MAX_REPROPOSALS`` times; whether X is an
ancestor is a store lookup the caller makes), else a conflict -- resolved by the pull when also
pulling, else a document error 409; any other status is the peer's refusal of the document.
"""

from __future__ import annotations

from enum import Enum

from couchlite._tuning import MAX_REPROPOSALS
from couchlite.replicator.protocol.changes import ProposalAnswer


class Decision(Enum):
    SEND = "send"
    PEER_HAS_IT = "peer has it"
    #: propose again with the answer's ``server_rev`` if it is an ancestor, else a conflict
    REPROPOSE_IF_ANCESTOR = "repropose if ancestor"
    CONFLICT = "conflict"
    REFUSED = "refused"


def decide(answer: ProposalAnswer, rev_id: str, round_: int) -> Decision:
    """The meaning of ``answer`` for the proposal of ``rev_id`` in proposal round ``round_``."""
    status = answer.status
    if status == 0:
        return Decision.SEND
    if status == 304:
        return Decision.PEER_HAS_IT
    if status == 409:
        server_rev = answer.server_rev
        if server_rev == rev_id:
            return Decision.PEER_HAS_IT
        if server_rev and round_ < MAX_REPROPOSALS:
            return Decision.REPROPOSE_IF_ANCESTOR
        return Decision.CONFLICT
    return Decision.REFUSED


__all__ = ["Decision", "decide"]
