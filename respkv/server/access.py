"""Who may run what on this node: the cluster's ACL users, applied, checked per command.

The users are the first group's (respkv.commands.acl_store): every node reads the
same record from its own copy of that group, so a change applied there is enforced
by every node. The default user, until an ACL command defines it for the cluster, is
this node's ``requirepass`` user. A change made on any node is proposed to the first
group's leader (forwarded there with a proof made with the cluster secret).

Failed AUTHs are counted, logged (rate-limited) and put in the ACL log; an address
that keeps failing gets its refusals held back a little longer each time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from respkv.commands import acl_store
from respkv.commands.acl_users import (
    DEFAULT_USER,
    DENIED_COMMAND,
    DENIED_KEY,
    REASONS,
    User,
    default_user,
    entry_for,
)
from respkv.commands.context import Session
from respkv.commands.table import Command
from respkv.config import Config
from respkv.protocol.reply import Reply, RespError
from respkv.replication.addresses import is_loopback
from respkv.replication.admin import ClusterAdmin
from respkv.replication.peerauth import RefusalLog
from respkv.state.keyspace import Keyspace

logger = logging.getLogger(__name__)

LOG_LENGTH = 128  # acllog-max-len
_GROUPING_MS = 60_000  # similar refusals within this long count as one log entry
_FREE_FAILURES = 3  # failed AUTHs an address may make per window before it waits
_FAILURE_WINDOW = 60.0
_DELAY_STEP = 0.25  # seconds added per failure past the free ones
_MAX_DELAY = 2.0
_MAX_TRACKED = 10_000  # addresses remembered for the delay

PROTECTED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers to Redis you "
    b"may adopt one of the following solutions: 1) Just disable protected mode sending the "
    b"command 'CONFIG SET protected-mode no' from the loopback interface by connecting to "
    b"Redis from the same host the server is running, however MAKE SURE Redis is not "
    b"publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change "
    b"permanent. 2) Alternatively you can just disable the protected mode by editing the "
    b"Redis configuration file, and setting the protected mode option to 'no', and then "
    b"restarting the server. 3) If you started the server manually just for testing, "
    b"restart it with the '--protected-mode no' option. 4) Set up an authentication "
    b"password for the default user. NOTE: You only need to do one of the above things in "
    b"order for the server to start accepting connections from the outside.\r\n")

KEY_DENIED = RespError("NOPERM this user has no permissions to access one of the keys "
                       "used as arguments")
CHANNEL_DENIED = RespError("NOPERM this user has no permissions to access one of the "
                           "channels used as arguments")


class AccessControl:
    def __init__(self, config: Config, sessions: Callable[[], Iterable[Session]],
                 count_failure: Callable[[], None], cluster: ClusterAdmin) -> None:
        self.config = config
        self.cluster = cluster
        self.sessions = sessions
        self.count_failure = count_failure
        self.group: Any = None  # the first Raft group, once the node has opened it
        self.keyspace: Any = Keyspace()  # its keyspace, which holds the users' record
        self.version = -1  # the record version and requirepass the users were built for
        self.requirepass: str | None = None
        self._defined: dict[str, User] = {}
        self._users: dict[str, User] = {DEFAULT_USER: default_user(config.requirepass)}
        self.log: deque[dict[str, Any]] = deque()
        self._failures: dict[str, deque[float]] = {}  # host -> times of failed AUTHs
        self._answer_at: dict[str, float] = {}  # host -> when its last refusal is answered
        self._refusals = RefusalLog(logger, message="refused AUTH")
        self._seed_text: str | None = None  # the ACL file's users, until the cluster has some

    def start(self, group: Any) -> None:
        """Read the users from the first group (once the node has opened its groups)."""
        self.group = group
        self.keyspace = group.keyspace
        self.refresh()

    # -- the users -----------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the users if the record or requirepass changed since the last call.
        Cheap when nothing did: run before every check."""
        keyspace = self.keyspace
        if keyspace.system_version == self.version and \
                self.config.requirepass is self.requirepass:
            return
        self.version = keyspace.system_version
        self.requirepass = self.config.requirepass
        record = keyspace.system.get(acl_store.RECORD)
        self._defined = acl_store.stored_users(record)
        users = dict(self._defined)
        users.setdefault(DEFAULT_USER, default_user(self.config.requirepass))
        self._users = users
        self._rebind_sessions()

    def _rebind_sessions(self) -> None:
        """Sessions take their user's new rules; those of a deleted user are closed (as
        Redis does), and subscribers to channels their user may no longer read too."""
        for session in self.sessions():
            user = self._users.get(session.user.name)
            if user is None:
                session.user = self._users[DEFAULT_USER]
                session.authenticated = False
                session.close()
                continue
            session.user = user
            if not user.unrestricted and not self._subscriptions_allowed(session, user):
                session.close()

    @staticmethod
    def _subscriptions_allowed(session: Session, user: User) -> bool:
        subs = session.subscriptions
        return (all(user.channel_ok(c, False) for c in subs["channel"])
                and all(user.channel_ok(c, False) for c in subs["shard"])
                and all(user.channel_ok(p, True) for p in subs["pattern"]))

    def users(self) -> dict[str, User]:
        self.refresh()
        return self._users

    def defines(self, name: str) -> bool:
        self.refresh()
        return name in self._defined

    def default(self) -> User:
        self.refresh()
        return self._users[DEFAULT_USER]

    def change(self, change: list[bytes]) -> Awaitable[Reply]:
        """Proposed to the first group, through its leader wherever that is."""
        return self.cluster.propose_everywhere([b"respkv.acl", *change])

    # -- checks --------------------------------------------------------------------

    def check(self, session: Session, command: Command, args: list[bytes],
              context: str = "toplevel") -> RespError | None:
        """None if the session's user may run this call, else the NOPERM to answer (the
        refusal is in the ACL log)."""
        self.refresh()
        user = session.user
        if user.unrestricted:
            return None
        entry = entry_for(command, args)
        if entry is None:
            return None  # an unknown subcommand: the command answers its own error
        reason, index = user.check(entry, args)
        if not reason:
            return None
        if reason == DENIED_COMMAND:
            self._log(session, reason, context, entry.full_name, user.name)
            return RespError(f"NOPERM this user has no permissions to run the "
                             f"'{entry.full_name}' command")
        self._log(session, reason, context, args[index].decode("latin-1"), user.name)
        return KEY_DENIED if reason == DENIED_KEY else CHANNEL_DENIED

    def channel_allowed(self, session: Session, channel: bytes, literal: bool) -> bool:
        self.refresh()
        return session.user.unrestricted or session.user.channel_ok(channel, literal)

    def protected_refusal(self, peer_host: str) -> bytes | None:
        """Protected mode, as Redis: while the default user needs no password, only
        loopback clients are answered; the others are told why and closed."""
        if not self.config.protected_mode or is_loopback(peer_host):
            return None
        default = self.default()
        return PROTECTED if default.nopass and default.enabled else None

    # -- AUTH ------------------------------------------------------------------------

    def authenticate(self, session: Session, name: bytes, password: bytes,
                     command: bytes) -> bool:
        user = self.users().get(name.decode("latin-1"))
        if user is not None and user.password_ok(password):
            session.user = user
            session.authenticated = True
            return True
        self.count_failure()
        self._refusals.refused(session.addr, "wrong password or unknown user")
        self._failed_at(session.addr)
        self._log(session, 0, "toplevel", command.decode("latin-1"), name.decode("latin-1"))
        return False

    def _failed_at(self, address: str) -> None:
        host = address.rpartition(":")[0] or address
        now = time.monotonic()
        times = self._failures.get(host)
        if times is None:
            if len(self._failures) >= _MAX_TRACKED:
                self._failures.clear()
                self._answer_at.clear()
            times = self._failures[host] = deque()
        times.append(now)
        while times and times[0] < now - _FAILURE_WINDOW:
            times.popleft()

    def failure_delay(self, address: str) -> float:
        """Past the first few failures from one host in a window, each refusal waits a
        step longer (up to a cap), and the host's refusals are answered one after the
        other: many connections guess no faster than one."""
        host = address.rpartition(":")[0] or address
        times = self._failures.get(host)
        extra = (len(times) if times else 0) - _FREE_FAILURES
        if extra <= 0:
            return 0.0
        now = time.monotonic()
        start = max(now, self._answer_at.get(host, now))
        self._answer_at[host] = answer = start + min(extra * _DELAY_STEP, _MAX_DELAY)
        return answer - now

    # -- the ACL log -----------------------------------------------------------------

    def _log(self, session: Session, reason: int, context: str, object_: str,
             username: str) -> None:
        now = int(time.time() * 1000)
        kind = REASONS.get(reason, "auth")
        for index, entry in enumerate(self.log):
            if index >= 10:  # as Redis: look for a match among the latest few only
                break
            if (entry["reason"] == kind and entry["context"] == context
                    and entry["object"] == object_ and entry["username"] == username
                    and abs(now - entry["ctime"]) <= _GROUPING_MS):
                entry["count"] += 1
                entry["ctime"] = now
                entry["client-info"] = session.info_line()
                self.log.remove(entry)
                self.log.appendleft(entry)
                return
        self.log.appendleft({"count": 1, "reason": kind, "context": context,
                             "object": object_, "username": username, "ctime": now,
                             "client-info": session.info_line()})
        while len(self.log) > LOG_LENGTH:
            self.log.pop()

    def log_entries(self, count: int) -> Reply:
        now = int(time.time() * 1000)
        return [{"count": e["count"], "reason": e["reason"], "context": e["context"],
                 "object": e["object"], "username": e["username"],
                 "age-seconds": (now - e["ctime"]) / 1000, "client-info": e["client-info"]}
                for e in list(self.log)[:count]]

    def reset_log(self) -> None:
        self.log.clear()

    # -- the ACL file ------------------------------------------------------------------

    def seed_from_file(self) -> None:
        """Start-up with ``aclfile``: refuse a bad file; a cluster that has never
        defined users takes the file's (proposed once this node leads the first group)."""
        path = self.config.aclfile
        if not path:
            return
        text = acl_store.with_pubsub_default(Path(path).read_text(encoding="latin-1"),
                                             self.config.acl_pubsub_default)
        acl_store.parse_users(text, path)  # AclFileError stops the start
        self._seed_text = text

    async def seed_when_leader(self) -> None:
        text = self._seed_text
        if text is None:
            return
        while self.group is not None:
            if self.group.keyspace.system.get(acl_store.RECORD) is not None:
                return  # the cluster has its users: the file is for ACL LOAD
            if self.group.is_leader():
                try:
                    await self.change([b"load", text.encode("latin-1")])
                except Exception as error:  # lost the lead meanwhile: try again
                    logger.info("ACL file not loaded yet: %s", error)
                else:
                    logger.info("users loaded from the ACL file", extra={"file":
                                                                         self.config.aclfile})
                    return
            await asyncio.sleep(0.5)
