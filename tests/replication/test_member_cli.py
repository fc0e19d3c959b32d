"""`respkv member list|remove|add`: what an operator replacing a node runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from testsupport.processes import ROOT, Cluster


def respkv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "respkv.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_list_remove_add(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3)
    via = cluster.leader().address
    listed = respkv("member", "list", "--via", via)
    assert listed.returncode == 0, listed.stderr
    assert "g0: leader=n1 voters=n1,n2,n3 learners=-" in listed.stdout
    gone = cluster.node("n3")
    gone.kill()
    removed = respkv("member", "remove", "n3", "--via", via)
    assert removed.returncode == 0 and "n3 removed" in removed.stdout, removed.stderr
    cluster.wait_voters({"n1", "n2"})
    added = respkv("member", "add", "n4", "--via", via)
    assert added.returncode == 0, added.stderr
    assert f"--node-id n4 --dir DIR --port PORT --join {via} --join-token respkv1." \
        in added.stdout
    refused = respkv("member", "remove", "n9", "--via", via)
    assert refused.returncode != 0 and "node n9 is not a member" in refused.stderr
