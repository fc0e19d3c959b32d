"""Why the Raft core refused a message: the one list of reasons.

The core drops a message it cannot trust (a term from too far ahead, an index
that cannot be, a sender that is not a member) instead of acting on it, counts
it by reason in ``RaftCore.refusal_counts`` and reports it in ``Ready.refused``.
The driver's log lines, INFO fields and metrics name the reasons from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalReason(StrEnum):
    TERM_TOO_HIGH = "term_too_high"  # more than MAX_TERM_JUMP ahead of ours, or past MAX_TERM
    ACK_PAST_END = "ack_past_end"  # an append response for an index past the leader's log
    BAD_INDEX = "bad_index"  # a negative or impossible index, term, commit, hint or context
    BAD_ENTRIES = "bad_entries"  # appended entries that do not follow, or a garbled conf change
    BAD_SNAPSHOT = "bad_snapshot"  # a snapshot whose index, term or membership is nonsense
    STRANGER = "stranger"  # a sender that is not a member of the group's configuration


@dataclass(slots=True, frozen=True)
class Refusal:
    reason: RefusalReason
    sender: str
    detail: str
