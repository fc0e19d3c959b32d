"""Deliberately broken behaviour, for the tests that prove our checks can fail.

Every fault point of the project is named here and nowhere else. Nothing is on
unless asked for explicitly: a node reads its faults from one directive,
``unsafe-test-faults`` (a config file line, or ``--set``), the Raft core from
its ``Config.broken_rules``, the simulator from its command line. Each check
that could be broken is chosen once, when the object that runs it is built, so
the safe path pays nothing for the switch.

The directive's value is a comma list::

    stale-reads             serve reads from local state, with no read index
    early-ack               acknowledge writes before the log is on disk
    crash-at=<point>        exit at once (as kill -9 would) when <point> is reached
    raft=<rule>[+<rule>]    break Raft core rules (see RaftRule)
    apply-bug=<key>         raise inside the Raft loop when an entry naming <key> is
                            applied, as a bug of ours would (the group must fence itself)

One fault point is not a directive but a command, for fault tests that slow a
node's disk while it runs::

    DEBUG FSYNC-DELAY <ms>  every fsync of the node's log takes <ms> longer (0: plain
                            fsync again); refused unless ``enable-debug-command``
                            allows DEBUG (off by default). It lives in
                            ``respkv.storage.nodelog`` (``NodeLog.slow_down``), which
                            swaps the sync method only while a delay is set.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from enum import StrEnum

logger = logging.getLogger(__name__)


class RaftRule(StrEnum):
    """Rules of the Raft core that the simulator's teeth break, one at a time."""

    COMMIT_OLD_TERM = "commit_old_term"  # commit entries of earlier terms by counting replicas
    VOTE_NO_UPTODATE = "vote_no_uptodate"  # grant votes without the log up-to-date check
    FORGET_VOTE = "forget_vote"  # do not persist the vote in the HardState
    LEASE_FOREVER = "lease_forever"  # a leader's lease never runs out (lease reads only)
    PAUSE_KEEPS_LEASE = "pause_keeps_lease"  # a pause does not age the leader's lease
    ADOPT_ANY_TERM = "adopt_any_term"  # adopt a message's term however far ahead it is
    ACK_PAST_END = "ack_past_end"  # count an acknowledgement past the end of the leader's log
    HEAR_STRANGERS = "hear_strangers"  # act on messages from nodes that are not members


class CrashPoint(StrEnum):
    """Places in snapshot taking and installing where a crash must leave a node that
    restarts consistent."""

    SNAPSHOT_TAKEN_BEFORE_RENAME = "snapshot-taken-before-rename"  # copy made, not yet named
    SNAPSHOT_TAKEN_BEFORE_META = "snapshot-taken-before-meta"  # file in place, meta still old
    COMPACT_BEFORE = "compact-before"  # snapshot complete; the log not yet compacted
    COMPACT_AFTER = "compact-after"  # log compacted
    INSTALL_BEFORE_RESTORE = "install-before-restore"  # received and copied; store not replaced
    INSTALL_AFTER_RESTORE = "install-after-restore"  # store replaced; meta and log not yet
    INSTALL_BEFORE_COMPACT = "install-before-compact"  # meta written; old log not yet dropped


CRASH_EXIT_CODE = 86  # what a crash point exits with, so tests tell it from a real crash


class FaultsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Faults:
    stale_reads: bool = False
    early_ack: bool = False
    crash_at: CrashPoint | None = None
    raft: frozenset[RaftRule] = frozenset()
    apply_bug: bytes = b""

    @classmethod
    def parse(cls, text: str) -> Faults:
        stale_reads = early_ack = False
        crash_at: CrashPoint | None = None
        raft: set[RaftRule] = set()
        apply_bug = b""
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            try:
                if name == "stale-reads" and not value:
                    stale_reads = True
                elif name == "early-ack" and not value:
                    early_ack = True
                elif name == "crash-at":
                    crash_at = CrashPoint(value)
                elif name == "raft":
                    raft.update(RaftRule(rule) for rule in value.split("+"))
                elif name == "apply-bug" and value:
                    apply_bug = value.encode()
                else:
                    raise ValueError(item)
            except ValueError:
                raise FaultsError(f"unknown test fault {item!r}") from None
        return cls(stale_reads, early_ack, crash_at, frozenset(raft), apply_bug)

    def __bool__(self) -> bool:
        return self != SAFE

    def describe(self) -> str:
        parts = [name for name, on in (("stale-reads", self.stale_reads),
                                        ("early-ack", self.early_ack)) if on]
        if self.crash_at is not None:
            parts.append(f"crash-at={self.crash_at}")
        if self.raft:
            parts.append("raft=" + "+".join(sorted(self.raft)))
        if self.apply_bug:
            parts.append(f"apply-bug={self.apply_bug.decode()}")
        return ",".join(parts)

    def crash_point(self, point: CrashPoint) -> None:
        """Exit at once, as a kill -9 would, when this is the point asked for."""
        if self.crash_at is point:
            logger.warning("crash point reached: exiting", extra={"point": str(point)})
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)


SAFE = Faults()
