"""Reading a node's INFO: one parser for the tests, the benchmarks and the fault suite."""

from __future__ import annotations

import re


def parse_info(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    fields = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value
    return fields


def group_lines(info: dict[str, str]) -> dict[str, dict[str, str]]:
    """INFO raft's ``raft_group_<g>:role=leader,...,voters=a|b|c`` lines as
    {group: {field: value}}, in group order (g0, g1, ... g10)."""
    found = {key[len("raft_group_"):]: dict(part.split("=", 1) for part in value.split(",")
                                            if "=" in part)
             for key, value in info.items() if key.startswith("raft_group_")}
    return dict(sorted(found.items(), key=lambda item: int(item[0][1:])))


def agreed_leaders(infos: dict[str, dict[str, str]]) -> dict[str, str] | None:
    """{group: leader id} from the INFO raft of nodes (by id), when in every group all
    of them name the same leader and that leader says it leads; else None."""
    lines = {node_id: group_lines(info) for node_id, info in infos.items()}
    groups = {tuple(by_group) for by_group in lines.values()}
    if len(groups) != 1:
        return None
    leaders = {}
    for group in groups.pop():
        named = {by_group[group].get("leader", "") for by_group in lines.values()}
        leader = named.pop() if len(named) == 1 else ""
        if lines.get(leader, {}).get(group, {}).get("role") != "leader":
            return None
        leaders[group] = leader
    return leaders


def members(text: str) -> set[str]:
    """A member list of INFO raft: ``a,b`` in ``raft_voters``, ``a|b`` in a group line."""
    return {member for member in re.split(r"[,|]", text) if member}
