"""ACL on a real node, diffed against a real redis-server: the ACL commands' replies and
errors, NOPERM for commands, keys and channels (byte for byte), which commands each
category lets through (ACL DRYRUN over the whole table), AUTH as a user, MULTI and
scripts under a restricted user, and the users surviving a restart."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from rawconn import RawConn, resp

from respkv.commands import acl_store
from respkv.commands.acl_users import entries
from respkv.commands.docs import redis_references
from respkv.config import Config
from respkv.server.access import PROTECTED, AccessControl
from testsupport.ports import free_port
from testsupport.processes import Node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = Node(free_port(), tmp_path_factory.mktemp("acl") / "n1").start()
    yield started
    assert started.stop() == 0, started.log()


def replies(port: int, commands: list[tuple[str, ...]], protocol: int = 2) -> list[bytes]:
    """Each command's reply, as bytes, on one connection."""
    out = []
    with RawConn(port) as conn:
        if protocol == 3:
            conn.send(resp("HELLO", "3"))
            conn.read_reply_bytes()
        for command in commands:
            conn.send(resp(*command))
            out.append(conn.read_reply_bytes())
    return out


def both(node: Node, redis_port: int, commands: list[tuple[str, ...]],
         protocol: int = 2) -> list[bytes]:
    ours = replies(node.port, commands, protocol)
    theirs = replies(redis_port, commands, protocol)
    for command, mine, redis_reply in zip(commands, ours, theirs, strict=True):
        assert mine == redis_reply, command
    return ours


def reset_users(node: Node, redis_port: int) -> None:
    for port in (node.port, redis_port):
        with RawConn(port) as conn:
            conn.send(resp("ACL", "USERS"))
            names = [n.decode() for n in conn.replies(1)[0] if n != b"default"]
            if names:
                conn.send(resp("ACL", "DELUSER", *names))
                conn.replies(1)
            conn.send(resp("ACL", "SETUSER", "default", "reset", "on", "nopass", "+@all", "~*",
                           "&*") + resp("ACL", "LOG", "RESET"))
            conn.replies(2)


@pytest.fixture(autouse=True)
def fresh(node: Node, redis_port: int) -> None:
    reset_users(node, redis_port)


SETUSER_ERRORS = [
    ("ACL", "SETUSER", "x", "+nosuch"), ("ACL", "SETUSER", "x", "+@nosuch"),
    ("ACL", "SETUSER", "x", "foo"), ("ACL", "SETUSER", "x", "#abc"),
    ("ACL", "SETUSER", "x", "~a b"), ("ACL", "SETUSER", "x", "+config|nosuch"),
    ("ACL", "SETUSER", "x", "+config|get|x"), ("ACL", "SETUSER", "x", "+get|"),
    ("ACL", "SETUSER", "x", "allkeys", "~k"), ("ACL", "SETUSER", "x", "allchannels", "&c"),
    ("ACL", "SETUSER", "x", "<nope"), ("ACL", "SETUSER", "x", "(+get", "~k"),
    ("ACL", "SETUSER", "x y", "on"), ("ACL", "SETUSER", "x", "%X~k"),
    ("ACL", "SETUSER", "x", "(+get ~k nonsense)"),
    ("ACL", "GETUSER", "nobody"), ("ACL", "DELUSER", "default"), ("ACL", "CAT", "nosuch"),
    ("ACL", "GENPASS", "0"), ("ACL", "GENPASS", "5000"), ("ACL", "GENPASS", "x"),
    ("ACL", "DRYRUN", "nobody", "get", "k"), ("ACL", "DRYRUN", "default", "nosuch"),
    ("ACL", "LOAD"), ("ACL", "SAVE"), ("ACL", "NOSUCH"), ("ACL",), ("ACL", "WHOAMI", "x"),
    ("ACL", "LOG", "x"), ("ACL", "USERS"), ("ACL", "WHOAMI"), ("ACL", "CAT"),
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_and_errors_are_redis_own(node: Node, redis_port: int, protocol: int) -> None:
    both(node, redis_port, SETUSER_ERRORS, protocol)
    assert replies(node.port, [("ACL", "USERS")]) == [b"*1\r\n$7\r\ndefault\r\n"]


USERS = {  # name -> rules; the descriptions redis-server gives are ours exactly
    "alice": ("on", ">pw", "~app:*", "%R~ro:*", "%W~wo:*", "&news.*", "-@all", "+get",
              "+set", "+subscribe", "+publish", "+psubscribe"),
    "bob": ("on", "nopass", "+@all", "-flushall", "-config|set", "~*", "resetchannels"),
    "carl": ("off", "#" + "a" * 64, "+select|0", "+client|id", "allkeys", "allchannels"),
    "dora": ("on", ">x", ">y", "<x", "+@all", "-@all", "+ping", "(+get ~k*)", "(+set ~s*)"),
}


def single_commands_sorted(value: object) -> object:
    """Redis lists the single commands of a description (after the categories) in its
    hash table's order, which changes from run to run: sorted here, on both sides."""
    if isinstance(value, list):
        return [single_commands_sorted(v) for v in value]
    if isinstance(value, dict):
        return {k: single_commands_sorted(v) for k, v in value.items()}
    if not isinstance(value, bytes) or (b"+@all" not in value and b"-@all" not in value):
        return value
    words = value.split(b" ")
    start = max(i for i, w in enumerate(words) if w in (b"+@all", b"-@all"))
    end = start + 1
    while end < len(words) and words[end][:2] in (b"+@", b"-@"):
        end += 1
    tail = [w for w in words[end:] if not w.endswith(b")")]
    closing = [w for w in words[end:] if w.endswith(b")")]
    return b" ".join(words[:end] + sorted(tail) + closing)


def parsed(port: int, commands: list[tuple[str, ...]], protocol: int) -> list[object]:
    with RawConn(port) as conn:
        if protocol == 3:
            conn.send(resp("HELLO", "3"))
            conn.replies(1)
        conn.send(b"".join(resp(*c) for c in commands))
        return [single_commands_sorted(r) for r in conn.replies(len(commands))]


@pytest.mark.parametrize("protocol", [2, 3])
def test_users_read_back_as_redis_does(node: Node, redis_port: int, protocol: int) -> None:
    setup = [("ACL", "SETUSER", name, *rules) for name, rules in USERS.items()]
    reads = [("ACL", "LIST"), ("ACL", "USERS"), *(("ACL", "GETUSER", n) for n in USERS),
             ("ACL", "DELUSER", "carl", "zed", "dora"), ("ACL", "USERS")]
    ours = parsed(node.port, setup + reads, protocol)
    assert ours == parsed(redis_port, setup + reads, protocol)
    assert ours[len(setup)][0].startswith(b"user alice on #30c952fab122c3f9759f02a6d95c")


def as_user(name: str, password: str, commands: list[tuple[str, ...]]) -> list:
    return [("AUTH", name, password), *commands]


def test_noperm_is_redis_own(node: Node, redis_port: int) -> None:
    both(node, redis_port, [("ACL", "SETUSER", name, *rules) for name, rules in USERS.items()])
    calls = [
        ("GET", "app:1"), ("GET", "other"), ("SET", "app:1", "v"), ("SET", "ro:1", "v"),
        ("GET", "ro:1"), ("SET", "wo:1", "v"), ("GET", "wo:1"), ("DEL", "app:1"),
        ("PUBLISH", "news.1", "m"), ("PUBLISH", "sport", "m"), ("SUBSCRIBE", "sport"),
        ("PSUBSCRIBE", "news.*x"), ("CONFIG", "GET", "port"), ("ACL", "WHOAMI"),
        ("MULTI",), ("AUTH", "alice", "wrong"), ("AUTH", "carl", "whatever"),
        ("AUTH", "nobody", "x"), ("ACL", "WHOAMI"),
    ]
    both(node, redis_port, as_user("alice", "pw", calls))
    dora = [("GET", "k1"), ("GET", "s1"), ("SET", "s1", "v"), ("SET", "k1", "v"), ("PING",),
            ("MGET", "k1", "s1")]
    both(node, redis_port, as_user("dora", "y", dora))
    bob = [("FLUSHALL",), ("CONFIG", "SET", "maxclients", "100"), ("SET", "a", "1"),
           ("PUBLISH", "c", "m"), ("MULTI",), ("FLUSHALL",), ("SET", "a", "2"), ("EXEC",)]
    both(node, redis_port, as_user("bob", "any", bob))


def test_scripts_run_with_the_callers_permissions(node: Node, redis_port: int) -> None:
    both(node, redis_port, [("ACL", "SETUSER", "lua", "on", "nopass", "~a*", "+@all",
                             "-set", "resetchannels")])
    calls = [("EVAL", "return redis.call('get', KEYS[1])", "1", "a1"),
             ("EVAL", "return redis.pcall('set', KEYS[1], 'x')", "1", "a1"),
             ("EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "a1"),
             ("EVAL", "return redis.pcall('get', KEYS[1])", "1", "b1"),
             ("EVAL", "return redis.pcall('publish', 'c', 'm')", "0")]
    both(node, redis_port, as_user("lua", "x", calls))


def test_new_users_get_the_channels_acl_pubsub_default_says(node: Node,
                                                             redis_port: int) -> None:
    try:
        both(node, redis_port, [
            ("CONFIG", "GET", "acl-pubsub-default"),
            ("CONFIG", "SET", "acl-pubsub-default", "nosuch"),
            ("CONFIG", "SET", "acl-pubsub-default", "allchannels"),
            ("ACL", "SETUSER", "opened", "on"), ("ACL", "GETUSER", "opened"),
            ("CONFIG", "SET", "acl-pubsub-default", "resetchannels"),
            ("ACL", "SETUSER", "closed", "on"), ("ACL", "SETUSER", "opened", "+get"),
            ("ACL", "LIST")])
    finally:
        for port in (node.port, redis_port):
            replies(port, [("CONFIG", "SET", "acl-pubsub-default", "resetchannels")])


def test_a_loaded_file_gets_the_default_channels_on_every_node() -> None:
    text = "user a on nopass ~*\n\nuser  c  off\n"
    users = acl_store.parse_users(acl_store.with_pubsub_default(text, "allchannels"))
    assert [users[n].describe() for n in "ac"] == ["on nopass ~* &* -@all", "off &* -@all"]
    assert acl_store.with_pubsub_default(text, "resetchannels") == text
    with pytest.raises(acl_store.AclFileError, match="acl:1: Adding a pattern after the"):
        acl_store.parse_users(acl_store.with_pubsub_default("user b on &c", "allchannels"))


def test_the_log_says_who_was_refused(node: Node, redis_port: int) -> None:
    calls = [("ACL", "SETUSER", "eve", "on", ">pw", "+get", "~k"), ("AUTH", "eve", "pw"),
             ("SET", "k", "v"), ("SET", "k", "v"), ("GET", "other"),
             ("CONFIG", "GET", "port"), ("AUTH", "eve", "bad")]
    for port in (node.port, redis_port):
        replies(port, calls)
    fields = ("count", "reason", "context", "object", "username")
    logs = []
    for port in (node.port, redis_port):
        with RawConn(port) as conn:
            conn.send(resp("ACL", "LOG"))
            entries = conn.replies(1)[0]
            logs.append([{f: e[e.index(f.encode()) + 1] for f in fields} for e in entries])
            # client-info names the refused call, subcommand included
            logs[-1].extend(re.search(rb" cmd=(\S+)", e[e.index(b"client-info") + 1])[1]
                            for e in entries)
    assert logs[0] == logs[1]
    assert logs[0][-4:] == [b"auth", b"config|get", b"get", b"set"]
    assert [e["reason"] for e in logs[0][:4]] == [b"auth", b"command", b"key", b"command"]


# Users whose permissions ACL DRYRUN is asked about for every command both servers have:
# what each category contains, and how key and channel patterns apply, must agree.
DRYRUN_USERS = {
    "reader": ("+@read", "~k*"), "safe": ("+@all", "-@dangerous", "~*"),
    "writer": ("+@write", "-@string", "~k1"), "hl": ("+@hash", "+@list", "%R~k*"),
    "nokeys": ("+@all", "-@keyspace", "+del", "~*"), "pubsub": ("+@pubsub", "&k*"),
    "admin": ("+@admin", "~*"), "slow": ("+@slow", "-@write", "%W~k*"), "fast": ("+@fast",),
    "tx": ("+@connection", "+@transaction", "+@scripting", "~*"),
    "sets": ("+@set", "+@sortedset", "+@bitmap", "+@hyperloglog", "~k2"),
    "blocking": ("+@blocking", "~*"), "first": ("+select|0", "+client|id", "+config|get"),
}


def dryrun_calls() -> list[tuple[str, ...]]:
    """One call for every command and subcommand both servers have, with keys k1, k2..."""
    calls = []
    theirs = redis_references()
    for name, entry in entries().items():
        if name not in theirs or entry.command.subcommands:
            continue
        words = name.split("|")
        args = [f"k{i}" for i in range(1, abs(entry.command.arity) - len(words) + 1)]
        calls.append((*words, *args))
    return calls


def test_each_category_lets_through_what_redis_does(node: Node, redis_port: int) -> None:
    both(node, redis_port, [("ACL", "SETUSER", n, *rules) for n, rules in DRYRUN_USERS.items()])
    # PFCOUNT writes here (it caches the count through the log) and OBJECT HELP reads:
    # their flags, and so their categories, differ from Redis' on purpose
    calls = [call for call in dryrun_calls() if call[0] != "pfcount"
             and call[:2] != ("object", "help")]
    assert len(calls) > 200
    for user in DRYRUN_USERS:
        both(node, redis_port, [("ACL", "DRYRUN", user, *call) for call in calls])


def test_users_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = Node(free_port(), tmp_path_factory.mktemp("acl-restart") / "n1").start()
    try:
        client = node.client()
        client.execute_command("ACL", "SETUSER", "keeper", "on", ">pw", "+get", "~k*")
        client.execute_command("ACL", "SETUSER", "default", "resetpass", ">admin")
        node.password = "admin"  # the default user's now
        assert node.stop() == 0, node.log()
        node.start()
        assert node.client().execute_command("ACL", "LIST") == [
            b"user default on #8c6976e5b5410415bde908bd4dee15dfb167a9c873fc4bb8a81f6f2ab448a918"
            b" ~* &* +@all",
            b"user keeper on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
            b" ~k* resetchannels -@all +get"]
        keeper = node.client(username="keeper", password="pw")
        assert keeper.get("k1") is None
        with pytest.raises(redis.exceptions.NoPermissionError, match="to run the 'set'"):
            keeper.set("k1", "v")
    finally:
        node.stop()


def test_protected_mode_answers_only_loopback_while_there_is_no_password() -> None:
    def refusal(host: str, **settings: object) -> bytes | None:
        access = AccessControl(Config(**settings), list, lambda: None, cluster=None)
        return access.protected_refusal(host)

    assert refusal("10.1.2.3") == PROTECTED
    assert refusal("2001:db8::1") == PROTECTED
    assert PROTECTED.startswith(b"-DENIED Redis is running in protected mode")
    for local in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert refusal(local) is None
    assert refusal("10.1.2.3", requirepass="pw") is None
    assert refusal("10.1.2.3", protected_mode=False) is None
