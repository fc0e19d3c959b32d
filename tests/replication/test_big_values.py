"""Big values: a write whose log entry fits max-entry-bytes replicates to every node;
a bigger one is refused before it is proposed, with a clear error, and neither costs
an election."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from respkv.config import Config
from respkv.sizes import MAX_ENTRY_BYTES
from testsupport.info import group_lines
from testsupport.processes import Cluster
from testsupport.waiting import wait_for


def terms(cluster: Cluster) -> set[str]:
    return {group_lines(info)["g0"]["term"] for info in cluster.infos().values()}


def test_a_write_over_max_entry_bytes_is_refused_and_costs_no_election(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3, ["--shards", "1"])
    leader = cluster.leader()
    before = terms(cluster)
    assert len(before) == 1
    client = leader.client(socket_timeout=60)
    assert client.config_get("max-entry-bytes") == {"max-entry-bytes": str(
        Config().max_entry_bytes)}
    # small sizes, so that a loaded machine copies each in well under an election timeout
    limit = 1 << 20
    assert client.config_set("max-entry-bytes", limit) is True
    big = b"x" * (limit - 1024)  # fits, with its entry's few bytes around it
    assert client.set("big", big) is True
    with pytest.raises(redis.ResponseError, match=r"write too big to replicate: its log "
                                                  rf"entry would be \d+ bytes, over "
                                                  rf"max-entry-bytes \({limit}\)"):
        client.set("bigger", b"y" * (limit + 1))
    with pytest.raises(redis.ResponseError, match="write too big to replicate"):
        client.execute_command("MSET", "a", b"z" * (limit // 2), "b", b"z" * (limit // 2))
    assert client.set("after", "ok") is True  # the group goes on at once
    # the limit is the leader's, and CONFIG SET moves it
    assert client.config_set("max-entry-bytes", limit * 2) is True
    assert client.set("bigger", b"y" * (limit + 1)) is True
    with pytest.raises(redis.ResponseError, match="max-entry-bytes must be between"):
        client.config_set("max-entry-bytes", MAX_ENTRY_BYTES + 1)
    for node in cluster.nodes:
        reader = node.client(socket_timeout=60)
        wait_for(lambda r=reader: r.strlen("big") == len(big) and r.get("after") == b"ok"
                 and r.strlen("bigger") == limit + 1, timeout=30,
                 what="the big values on every node")
        assert reader.exists("a", "b") == 0
    assert terms(cluster) == before
