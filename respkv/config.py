"""One config object for a node: defaults < redis.conf-style file < command-line flags.

The file format is redis.conf's: one ``directive value`` a line, ``#``
comments, names with dashes (``raft-port 17001``). Every field below is a
directive; CONFIG GET/SET read and write the same object.
"""

from __future__ import annotations

import resource
import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from respkv.faults import Faults, FaultsError
from respkv.sizes import MAX_ENTRY_BYTES
from respkv.tlsconfig import AUTH_CLIENTS, TlsError, TlsFiles, protocol_range


class ConfigError(ValueError):
    pass


PUBSUB_DEFAULTS = ("allchannels", "resetchannels")  # acl-pubsub-default's values


def _size(text: str) -> int:
    """Redis memory units: 1k=1000, 1kb=1024, 1m, 1mb, 1g, 1gb."""
    units = {"k": 1000, "kb": 1024, "m": 10**6, "mb": 1 << 20, "g": 10**9, "gb": 1 << 30}
    lower = text.strip().lower()
    for suffix in ("kb", "mb", "gb", "k", "m", "g"):
        if lower.endswith(suffix):
            return int(lower[: -len(suffix)]) * units[suffix]
    return int(lower)


# -- client limits (client-output-buffer-limit, query buffer, maxclients) ---------

LLONG_MAX = (1 << 63) - 1
# CONFIG SET refuses these below 1mb, as Redis does; a file or flag may set less
# (a test's small limits).
_RUNTIME_RANGES = {
    "proto_max_bulk_len": (1 << 20, LLONG_MAX),
    "client_query_buffer_limit": (1 << 20, LLONG_MAX),
}
# Checked wherever they are set, as Redis checks them.
READ_MODES = ("linearizable", "strict", "stale")
_READ_MODE_ALIASES = {"lease": "linearizable"}  # lease reads are linearizable's default


def read_mode(name: str) -> str:
    """A read-consistency name, checked; ``lease`` (of older configs) is linearizable."""
    mode = _READ_MODE_ALIASES.get(name.lower(), name.lower())
    if mode not in READ_MODES:
        raise ConfigError("read-consistency must be linearizable, strict or stale")
    return mode


_RANGES = {"maxclients": (1, (1 << 32) - 1), "timeout": (0, (1 << 31) - 1),
           "maxmemory_samples": (1, (1 << 31) - 1), "slowlog_max_len": (0, LLONG_MAX),
           "latency_monitor_threshold": (0, LLONG_MAX)}
# Redis' eviction policies, in the order its error message lists them.
MAXMEMORY_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
                      "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction")
_MEMORY_VALUES = {"maxmemory"}  # Redis' "memory value" directives: units, never negative
_INTEGERS = {"maxmemory_samples", "slowlog_log_slower_than", "slowlog_max_len",
             "latency_monitor_threshold"}  # plain integers: no units
# File descriptors kept for other than clients: Redis keeps 32; a node also holds its
# log segments, a store per group, the Raft connections and a metrics listener.
RESERVED_FDS = 64
_BUFFER_LIMIT_ERRORS = ("Wrong number of arguments in buffer limit configuration.",
                        "Invalid client class specified in buffer limit configuration.",
                        "Error in hard, soft or soft_seconds setting in buffer limit "
                        "configuration.")


@dataclass(frozen=True)
class BufferLimit:
    """One client class's output limit: past ``hard`` bytes, or past ``soft`` for more
    than ``soft_seconds``, the client is disconnected. 0 turns a bound off."""

    hard: int
    soft: int
    soft_seconds: int

    @property
    def off(self) -> bool:
        return not self.hard and not self.soft


@dataclass(frozen=True)
class OutputLimits:
    """client-output-buffer-limit: one BufferLimit per client class, in Redis' text
    form ("normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60")."""

    normal: BufferLimit = BufferLimit(0, 0, 0)
    slave: BufferLimit = BufferLimit(256 << 20, 64 << 20, 60)
    pubsub: BufferLimit = BufferLimit(32 << 20, 8 << 20, 60)

    def updated(self, text: str) -> OutputLimits:
        """These limits with the classes ``text`` names ("<class> <hard> <soft>
        <soft-seconds>" repeated) replaced; the others are kept, as Redis keeps them."""
        words = text.split()
        if len(words) % 4:
            raise ConfigError(_BUFFER_LIMIT_ERRORS[0])
        changes: dict[str, BufferLimit] = {}
        for i in range(0, len(words), 4):
            name = words[i].lower()
            name = "slave" if name == "replica" else name
            if name not in ("normal", "slave", "pubsub"):
                raise ConfigError(_BUFFER_LIMIT_ERRORS[1])
            try:
                hard, soft = _size(words[i + 1]), _size(words[i + 2])
                seconds = int(words[i + 3])
            except ValueError:
                raise ConfigError(_BUFFER_LIMIT_ERRORS[2]) from None
            if hard < 0 or soft < 0 or seconds < 0:
                raise ConfigError(_BUFFER_LIMIT_ERRORS[2])
            changes[name] = BufferLimit(hard, soft, seconds)
        return replace(self, **changes)

    def __str__(self) -> str:
        return " ".join(f"{name} {limit.hard} {limit.soft} {limit.soft_seconds}"
                        for name, limit in (("normal", self.normal), ("slave", self.slave),
                                            ("pubsub", self.pubsub)))


def client_capacity(wanted: int) -> int:
    """How many clients the open-file limit allows, ``wanted`` at most: the soft limit
    is first raised (up to the hard limit) to fit ``wanted`` plus RESERVED_FDS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_FDS
    infinite = resource.RLIM_INFINITY
    if soft != infinite and soft < need:
        target = need if hard == infinite else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == infinite:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


@dataclass
class Config:
    node_id: str = ""  # default: n<port>
    bind: str = "127.0.0.1"
    port: int = 6379
    raft_port: int = 0  # default: port + 10000
    # The Raft port's own address: loopback unless told, so exposing the client port
    # (--bind) never exposes the Raft port with it.
    raft_bind: str = "127.0.0.1"
    dir: str = "."
    join: str = ""  # host:port of any member, to join its cluster
    # Start-up only: after a lost quorum, make this survivor the only member of every
    # group, its whole log committed (README "Losing a quorum" says what that costs).
    force_new_cluster: bool = False
    # Start-up only, on an empty dir without --join: bootstrap the cluster join_token
    # names. Without it such a node is refused: it may be a member whose dir was lost.
    bootstrap: bool = False
    # respkv1.<cluster id>.<secret>: the cluster a joining node proves it may join, or
    # the one a first node bootstraps. Never shown by CONFIG GET.
    join_token: str = ""
    advertise: str = ""  # host:port clients are told (MOVED, CLUSTER SLOTS)
    raft_advertise: str = ""  # host:port peers are told
    log_level: str = "info"
    log_format: str = "text"  # text | json
    maxclients: int = 10000
    # The default user's password (AUTH, HELLO AUTH); empty: none. Give every node the
    # same one: nodes forward membership commands to each other with it.
    requirepass: str = ""
    # Users in ACL file form, read at start (a cluster with no users of its own takes
    # them), by ACL LOAD (proposed to the whole cluster) and written by ACL SAVE.
    aclfile: str = ""
    # The channels a user new to ACL SETUSER, ACL LOAD or the aclfile starts with:
    # none (resetchannels, Redis 7's default) or all (allchannels, Redis 6's).
    acl_pubsub_default: str = "resetchannels"
    # While the default user has no password, answer only loopback clients (Redis').
    protected_mode: bool = True
    # DEBUG: refused (no), allowed (yes), or allowed from loopback clients only (local).
    enable_debug_command: str = "no"
    timeout: int = 0  # close idle clients after N seconds; 0 = never
    # Client limits, as Redis': the longest bulk string of a request; the most
    # unparsed input a client may have before it is closed; and the output a client of
    # each class may have pending (client-output-buffer-limit, OutputLimits).
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_query_buffer_limit: int = 1 << 30
    client_output_buffer_limit: OutputLimits = field(default_factory=OutputLimits)
    # The largest log entry a write may make (its command and arguments, encoded); a
    # bigger write is refused before it is proposed. Every node handles an entry in
    # one go, pausing its loop for about as long as a copy, a checksum and a write of
    # it to disk take: far above a few MB, that pause nears an election timeout.
    max_entry_bytes: int = 8 << 20
    # How reads are served (README "Consistency"): linearizable (the leader's lease
    # while it holds, else a ReadIndex round), strict (a round for every batch of
    # reads, no clock assumption) or stale (local state, no check).
    read_consistency: str = "linearizable"
    # How much shorter a leader's lease is than the election timeout: the clock drift
    # between two nodes over an election timeout must stay below it.
    lease_margin_ms: int = 50
    metrics_port: int = 0  # Prometheus /metrics on this port; 0 = off
    # SLOWLOG, as Redis': commands that took at least this many microseconds are
    # logged (0: every command, negative: none), the newest slowlog-max-len kept.
    slowlog_log_slower_than: int = 10000
    slowlog_max_len: int = 128
    # LATENCY: events (event-loop, fsync, command) of at least this many ms are kept;
    # 0 turns the monitor off, as in Redis.
    latency_monitor_threshold: int = 0
    # Raft groups the 16384 slots are spread over, fixed when a cluster is
    # bootstrapped (a joining node takes the cluster's). 1 keeps every
    # multi-key command atomic; more spread the leaders, so writes scale.
    shards: int = 3
    balance_leaders: bool = True  # move each group's leadership to its preferred node
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    snapshot_entries: int = 100_000  # take a snapshot after this many applied entries
    snapshot_bytes: int = 64 << 20  # ... or after this many bytes of applied log
    min_free_disk: int = 1 << 20  # refuse writes while the data dir has less free space
    snapshot_chunk_bytes: int = 1 << 20
    databases: int = 1
    # The dataset's memory estimate above which writes evict keys (by
    # maxmemory-policy) or are refused with -OOM; 0: no limit. See README "Memory limits".
    maxmemory: int = 0
    maxmemory_policy: str = "noeviction"
    maxmemory_samples: int = 5  # keys sampled per eviction pick, as Redis
    busy_reply_threshold: int = 5000  # ms a script runs before others are told -BUSY
    # The sizes up to which Redis keeps a collection compact (listpack, intset); only
    # OBJECT ENCODING reports them here: respkv's own representation does not change.
    hash_max_listpack_entries: int = 128
    hash_max_listpack_value: int = 64
    set_max_intset_entries: int = 512
    zset_max_listpack_entries: int = 128
    zset_max_listpack_value: int = 64
    # Reported for clients that ask (redis-benchmark reads these); the WAL
    # fsyncs every acknowledged write whatever they say.
    save: str = ""
    appendonly: str = "no"
    # TLS, by Redis' directives (respkv.tlsconfig): a second client listener on
    # tls-port (port 0 leaves only that one); tls-cluster puts the Raft port in mutual
    # TLS; tls-replication sends this node's calls to other nodes' client ports (join,
    # forwarded membership changes) to their TLS ports.
    tls_port: int = 0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_cert_file: str = ""
    tls_ca_cert_dir: str = ""
    tls_auth_clients: str = "yes"  # yes | no | optional: client certificates
    tls_cluster: bool = False
    tls_replication: bool = False
    tls_protocols: str = ""  # e.g. "TLSv1.2 TLSv1.3"; empty: TLSv1.2 and up
    tls_ciphers: str = ""
    # Test only: deliberately broken behaviour (see respkv.faults). Never in production.
    unsafe_test_faults: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def lease_margin_ticks(self) -> int:
        """lease-margin-ms in whole ticks, rounded up (at least one)."""
        return max(1, -(-self.lease_margin_ms // self.tick_ms))

    def validate(self) -> None:
        """Fill the derived defaults (raft port, node id) and check the values."""
        if not self.raft_port:
            self.raft_port = (self.port or self.tls_port) + 10000
        if not self.node_id:
            self.node_id = f"n{self.port or self.tls_port}"
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log-format must be text or json, not {self.log_format!r}")
        self.read_consistency = read_mode(self.read_consistency)
        if self.lease_margin_ms <= 0 or self.lease_margin_ticks() >= self.election_ticks:
            raise ConfigError("lease-margin-ms must be above 0 and below the election "
                              f"timeout ({self.election_ticks * self.tick_ms} ms)")
        if self.acl_pubsub_default not in PUBSUB_DEFAULTS:
            raise ConfigError("argument(s) must be one of the following: "
                              + ", ".join(PUBSUB_DEFAULTS))
        if not 1024 <= self.max_entry_bytes <= MAX_ENTRY_BYTES:
            raise ConfigError(f"max-entry-bytes must be between 1024 and {MAX_ENTRY_BYTES}")
        if self.maxmemory_policy not in MAXMEMORY_POLICIES:
            raise ConfigError("argument(s) must be one of the following: "
                              + ", ".join(MAXMEMORY_POLICIES))
        if self.maxmemory < 0:
            raise ConfigError("argument must be a memory value")
        if self.enable_debug_command not in ("no", "yes", "local"):
            raise ConfigError("enable-debug-command must be no, yes or local")
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(self, name) <= high:  # CONFIG SET said so in set()
                raise ConfigError(f"{name.replace('_', '-')}: argument must be between "
                                  f"{low} and {high} inclusive")
        if not 1 <= self.shards <= 1024:
            raise ConfigError("shards must be between 1 and 1024")
        if not 0 <= self.port < 65536 or not 0 < self.raft_port < 65536 \
                or not 0 <= self.tls_port < 65536:
            raise ConfigError("port out of range")
        if not self.port and not self.tls_port:
            raise ConfigError("port 0 needs a tls-port: the node would have no client port")
        self._check_tls()
        try:
            self._faults = Faults.parse(self.unsafe_test_faults)
        except FaultsError as error:
            raise ConfigError(str(error)) from None

    def _check_tls(self) -> None:
        if self.tls_auth_clients not in AUTH_CLIENTS:
            raise ConfigError("tls-auth-clients must be yes, no or optional")
        wanted = [name for name, on in (("tls-port", self.tls_port),
                                        ("tls-cluster", self.tls_cluster),
                                        ("tls-replication", self.tls_replication)) if on]
        if wanted and not (self.tls_cert_file and self.tls_key_file):
            raise ConfigError(f"{wanted[0]} needs tls-cert-file and tls-key-file")
        verifies = (self.tls_cluster or self.tls_replication
                    or (self.tls_port and self.tls_auth_clients != "no"))
        if verifies and not (self.tls_ca_cert_file or self.tls_ca_cert_dir):
            raise ConfigError("Either tls-ca-cert-file or tls-ca-cert-dir must be specified "
                              "when tls-cluster, tls-replication or tls-auth-clients are "
                              "enabled")
        try:
            protocol_range(self.tls_protocols)
        except TlsError as error:
            raise ConfigError(str(error)) from None

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.tls_cert_file, self.tls_key_file, self.tls_ca_cert_file,
                        self.tls_ca_cert_dir, self.tls_protocols, self.tls_ciphers)

    @property
    def faults(self) -> Faults:
        """The test faults this node runs with: none unless unsafe-test-faults names some."""
        return self._faults

    @property
    def client_address(self) -> str:
        """Where plain clients are sent; with port 0, the TLS port (as Redis falls back)."""
        if self.advertise:
            return self.advertise
        return f"{self.bind}:{self.port}" if self.port else self.tls_client_address

    @property
    def tls_client_address(self) -> str:
        """Where TLS clients are sent: the advertised host (or bind), tls-port; "" without."""
        if not self.tls_port:
            return ""
        host = self.advertise.rpartition(":")[0] if self.advertise else self.bind
        return f"{host}:{self.tls_port}"

    @property
    def raft_address(self) -> str:
        return self.raft_advertise or f"{self.raft_bind}:{self.raft_port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.dir)

    # -- directives ------------------------------------------------------

    def set(self, name: str, value: str, runtime: bool = False) -> None:
        """Set one directive from its text form (file, flag, or CONFIG SET: ``runtime``,
        which checks what Redis checks only there)."""
        attr = name.strip().lower().replace("-", "_")
        spec = _FIELDS.get(attr)
        if spec is None or attr == "extra":
            raise ConfigError(f"Unknown option or number of arguments for CONFIG SET - '{name}'")
        current = getattr(self, attr)
        if isinstance(current, OutputLimits):
            self.client_output_buffer_limit = current.updated(value)
            return
        if attr == "maxmemory_policy":
            value = value.lower()
        try:
            if attr in _MEMORY_VALUES:
                converted: Any = _size(value)
                if converted < 0:
                    raise ValueError(value)
            elif attr in _INTEGERS:
                converted = int(value)
            elif isinstance(current, bool):
                converted = value.lower() in ("yes", "true", "1")
            elif isinstance(current, int):
                converted = _size(value)
            else:
                converted = value
        except ValueError:
            if attr in _MEMORY_VALUES:
                raise ConfigError("argument must be a memory value") from None
            if attr in _INTEGERS:
                raise ConfigError("argument couldn't be parsed into an integer") from None
            raise ConfigError(f"Invalid argument '{value}' for CONFIG SET '{name}'") from None
        if attr == "maxmemory_policy" and converted not in MAXMEMORY_POLICIES:
            raise ConfigError("argument(s) must be one of the following: "
                              + ", ".join(MAXMEMORY_POLICIES))
        if runtime:
            self._check_runtime(attr, converted)
        setattr(self, attr, converted)

    @staticmethod
    def _check_runtime(attr: str, value: Any) -> None:
        low, high = _RUNTIME_RANGES.get(attr, _RANGES.get(attr, (None, None)))
        if low is not None and not low <= value <= high:
            raise ConfigError(f"argument must be between {low} and {high} inclusive")
        if attr == "maxclients" and (capacity := client_capacity(value)) < value:
            raise ConfigError("The operating system is not able to handle the specified "
                              f"number of clients, try with {capacity}")

    def get(self, name: str) -> str:
        value = getattr(self, name.lower().replace("-", "_"))
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    @staticmethod
    def names() -> list[str]:
        return [f.replace("_", "-") for f in _FIELDS if f not in _HIDDEN]

    @classmethod
    def load(cls, path: str | None, overrides: dict[str, Any],
             settings: list[tuple[str, str]] | None = None) -> Config:
        """The file's directives, then ``overrides`` (typed flags), then ``settings``
        (``name value`` pairs, as --set gives them), each winning over the one before;
        checked once all are in (port 0 is valid only beside a tls-port)."""
        values: dict[str, Any] = {}
        scratch = cls()
        for name, value in read_conf_file(Path(path)) if path else []:
            scratch.set(name, value)
            attr = name.lower().replace("-", "_")
            values[attr] = getattr(scratch, attr)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name, value in settings or []:
            scratch.set(name, value)
            attr = name.lower().replace("-", "_")
            values[attr] = getattr(scratch, attr)
        return cls(**values)


_FIELDS = {f.name: f for f in fields(Config)}
_HIDDEN = {"extra", "join_token"}  # no CONFIG GET: internal, or a secret


def read_conf_file(path: Path) -> list[tuple[str, str]]:
    directives = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise ConfigError(f"{path}:{number}: {error}") from None
        if len(words) == 1:
            words.append("")
        directives.append((words[0], " ".join(words[1:])))
    return directives
