"""respkv's own Jepsen-style fault suite.

    python -m jepsen.runner --nodes 3 --duration 20 --seed 1 \\
        --faults kill,pause,partition --out /tmp/jepsen-1 [--workload bank,list-append]

starts a real cluster on 127.0.0.1 with a fault proxy in front of every raft
port, drives concurrent clients against every node, injects faults on a seeded
schedule, heals, waits for recovery, reads every node's final state and checks
the history. It writes ``verdict.txt`` (one line), ``summary.json``,
``history.jsonl`` and ``timeline.html`` to ``--out``, and exits 0 (pass),
1 (violation), 2 (unknown: a search ran out of budget) or 3 (no recovery).

Modules, one concern each:

- ``history``: ops (invoke/complete times, ok / fail / unknown) and history files;
- ``checker``: per-key register linearizability (Wing-Gong + Lowe memoization,
  as Porcupine), counter bounds, acknowledged writes present at the end,
  smallest failing sub-history;
- ``proxy``: the raft fault proxy (cut / drop / delay per directed link);
- ``nodes``: the respkv processes (start, kill -9, SIGSTOP/SIGCONT, by PID);
- ``faults``: the nemesis and its seeded schedule;
- ``workloads``: what a workload is (clients, final reads, check), the client
  threads, the transactional client (MULTI/EXEC to the leader of a hash tag),
  and the ``registers`` workload (registers, CAS, INCR, write-once keys,
  MSET/MGET in one slot);
- ``bank``: transfers in WATCH/MULTI/EXEC between accounts with a fixed total,
  and its checker;
- ``listappend`` and ``elle``: transactions of RPUSH/LRANGE micro-ops, and their
  strict-serializability checker (Elle's list-append: version orders, the
  dependency graph, a cycle search);
- ``runner``: one run, start to verdict;
- ``report``: verdict line, op counts, the timeline page.

Test-only unsafe server switches (``--unsafe stale-reads,early-ack``) exist to
prove the suite catches a broken server; never use them otherwise.
"""
