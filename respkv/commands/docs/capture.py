"""Record redis-server's COMMAND DOCS and COMMAND INFO into redis-7.0.json.

    python -m respkv.commands.docs.capture [--server /usr/bin/redis-server] [--out FILE]

Starts a redis-server of its own on a free loopback port (no persistence), asks it
for the docs and the info of every command in RESP3, keeps them as JSON (one entry
per command and per subcommand, "config|get"), then asks again one command at a
time in RESP2 and RESP3 and checks that the data, turned back into replies by
respkv.commands.docs, gives the very bytes redis-server sent. Nothing is written
unless every command passes, so the file is always a faithful copy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis

from respkv.commands.docs import REDIS_FILE, docs_reply, info_reply
from respkv.protocol.reply import RSet, Simple, encode

# -- a RESP3 parser that keeps what hiredis folds together (set/array, simple/bulk) --


class _Incomplete(Exception):
    pass


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    return data[pos:end], end + 2


def parse_typed(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """One reply: bulk strings as str, simple strings as Simple, sets as RSet, maps as
    dict, arrays as list."""
    if pos >= len(data):
        raise _Incomplete
    mark, (head, pos) = data[pos:pos + 1], _line(data, pos + 1)
    if mark == b"+":
        return Simple(head.decode()), pos
    if mark == b"-":
        raise RuntimeError(f"redis-server answered an error: {head.decode()}")
    if mark == b":":
        return int(head), pos
    if mark == b"_":
        return None, pos
    if mark in (b"$", b"="):  # a verbatim string (INFO) keeps its "txt:" prefix
        size = int(head)
        if size < 0:
            return None, pos
        if len(data) < pos + size + 2:
            raise _Incomplete
        return data[pos:pos + size].decode(), pos + size + 2
    if mark in (b"*", b"~"):
        items = []
        for _ in range(int(head)):
            item, pos = parse_typed(data, pos)
            items.append(item)
        return (RSet(items) if mark == b"~" else items), pos
    if mark == b"%":
        found = {}
        for _ in range(int(head)):
            key, pos = parse_typed(data, pos)
            found[key], pos = parse_typed(data, pos)
        return found, pos
    raise RuntimeError(f"unexpected RESP type {mark!r}")


class Connection:
    def __init__(self, port: int, resp3: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if resp3:
            self.call(b"HELLO", b"3")

    def call(self, *args: bytes) -> bytes:
        """One reply's exact bytes."""
        self.sock.sendall(hiredis.pack_command(args))
        reader, raw = hiredis.Reader(), b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            raw += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return raw

    def typed(self, *args: bytes) -> Any:
        return parse_typed(self.call(*args))[0]

    def close(self) -> None:
        self.sock.close()


# -- the server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(server: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    """A redis-server answering on a free loopback port (a port taken in between by
    someone else: try another)."""
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                Connection(port, resp3=False).close()
                return proc, port
            except OSError:
                time.sleep(0.05)  # polling a process start-up: no event to wait on
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{server} did not start")


# -- typed replies -> JSON ------------------------------------------------------------


def _json(value: Any) -> Any:
    """The JSON form: sets as lists, simple strings as strings."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):  # RSet too
        return [_json(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _entries(docs: dict, infos: list) -> dict[str, dict]:
    """One entry per command and per subcommand, by full name."""
    info_by_name: dict[str, list] = {}

    def add_info(entry: list) -> None:
        info_by_name[entry[0]] = entry
        for sub in entry[9]:
            add_info(sub)

    for entry in infos:
        add_info(entry)
    found: dict[str, dict] = {}

    def add_docs(name: str, fields: dict) -> None:
        info = info_by_name[name]
        found[name] = {
            "docs": _json({k: v for k, v in fields.items() if k != "subcommands"}),
            "info": {
                "arity": info[1],
                "flags": _json(info[2]),
                "keys": info[3:6],
                "acl_categories": _json(info[6]),
                "tips": _json(info[7]),
                "key_specs": _json(info[8]),
            },
        }
        for sub_name, sub_fields in fields.get("subcommands", {}).items():
            add_docs(sub_name, sub_fields)

    for name in sorted(docs):
        add_docs(name, docs[name])
    missing = set(info_by_name) - set(found)
    if missing:
        raise RuntimeError(f"COMMAND INFO has commands COMMAND DOCS lacks: {sorted(missing)}")
    return dict(sorted(found.items()))


# -- the check: the data gives redis-server's bytes back ------------------------------


def _rebuilt_docs(entries: dict[str, dict], name: str, subcommand_order: list[str]) -> dict:
    reply = docs_reply(entries[name]["docs"])
    if subcommand_order:
        reply["subcommands"] = {sub: docs_reply(entries[sub]["docs"])
                                for sub in subcommand_order}
    return reply


def _rebuilt_info(entries: dict[str, dict], name: str, order: dict[str, list[str]]) -> list:
    info = entries[name]["info"]
    subs = order.get(name)
    return info_reply(name, info["arity"], info["flags"], info["keys"],
                      info["acl_categories"], info["tips"], info["key_specs"],
                      None if subs is None else [_rebuilt_info(entries, s, order) for s in subs])


def check(entries: dict[str, dict], port: int) -> None:
    """Every command's docs and info, rebuilt from ``entries``, as redis-server's bytes.
    Redis lists a container's subcommands in its hash table's order, which changes
    from run to run: the rebuilt reply follows the order of the reply it is checked
    against."""
    for resp3 in (False, True):
        conn = Connection(port, resp3)
        try:
            for name in entries:
                raw = conn.call(b"COMMAND", b"DOCS", name.encode())
                order = _subcommands_of_docs(raw)
                expected = encode({name: _rebuilt_docs(entries, name, order)}, resp3)
                if raw != expected:
                    raise RuntimeError(f"COMMAND DOCS {name} (RESP{3 if resp3 else 2}) "
                                       f"does not round-trip:\n{raw!r}\n{expected!r}")
                raw = conn.call(b"COMMAND", b"INFO", name.encode())
                info_order = _subcommands_of_info(raw)
                expected = encode([_rebuilt_info(entries, name, info_order)], resp3)
                if raw != expected:
                    raise RuntimeError(f"COMMAND INFO {name} (RESP{3 if resp3 else 2}) "
                                       f"does not round-trip:\n{raw!r}\n{expected!r}")
        finally:
            conn.close()


def _subcommands_of_docs(raw: bytes) -> list[str]:
    """A container's subcommands' names, in the order a COMMAND DOCS reply lists them."""
    reply = parse_typed(raw)[0]
    if isinstance(reply, dict):
        (fields,) = reply.values()
    else:  # RESP2: maps are flat arrays of pairs
        fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
    subs = fields.get("subcommands", {})
    return list(subs if isinstance(subs, dict) else subs[::2])


def _subcommands_of_info(raw: bytes) -> dict[str, list[str]]:
    """Each container's subcommands' names, in the order a COMMAND INFO reply lists them
    (a command without subcommands has an empty set there, a container its array)."""
    order: dict[str, list[str]] = {}

    def walk(entry: list) -> None:
        if entry[9]:
            order[entry[0]] = [sub[0] for sub in entry[9]]
            for sub in entry[9]:
                walk(sub)

    walk(parse_typed(raw)[0][0])
    return order


# -- main ----------------------------------------------------------------------------


def capture(server: str) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_redis(server, Path(workdir))
        try:
            conn = Connection(port, resp3=True)
            version = conn.typed(b"INFO", b"server")
            docs = conn.typed(b"COMMAND", b"DOCS")
            infos = conn.typed(b"COMMAND", b"INFO")
            conn.close()
            entries = _entries(docs, infos)
            check(entries, port)
        finally:
            proc.terminate()
            proc.wait(10)
    redis_version = next(line.split(":", 1)[1].strip() for line in version.splitlines()
                         if line.startswith("redis_version:"))
    return {
        "about": f"COMMAND DOCS and COMMAND INFO of redis-server {redis_version}, recorded by "
                 "python -m respkv.commands.docs.capture: capture again, never edit",
        "redis_version": redis_version,
        "commands": entries,
    }


def dumps(data: dict) -> str:
    """Compact JSON, one command a line, so that a new capture diffs readably."""
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    head = {k: v for k, v in data.items() if k != "commands"}
    lines = [json.dumps(head, **compact)[:-1] + ',"commands":{']
    names = list(data["commands"])
    for i, name in enumerate(names):
        comma = "," if i < len(names) - 1 else ""
        lines.append(f"{json.dumps(name)}:{json.dumps(data['commands'][name], **compact)}"
                     f"{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(REDIS_FILE))
    options = parser.parse_args(argv)
    data = capture(options.server)
    if not data["redis_version"].startswith("7.0."):
        print(f"warning: redis-server {data['redis_version']}, not 7.0", file=sys.stderr)
    options.out.write_text(dumps(data), encoding="utf-8")
    print(f"{options.out}: {len(data['commands'])} commands and subcommands of redis-server "
          f"{data['redis_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
