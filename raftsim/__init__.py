"""Test tools for the Raft core, outside the product (not in the wheel).

* :mod:`raftsim.simulate`: the seeded cluster simulator and its safety checks;
  ``python -m raftsim --seeds 1000 --nodes 5`` runs it.
* :mod:`raftsim.cluster`: a hand-driven in-memory cluster for scenario tests and
  benchmarks.

Both drive :mod:`respkv.raft.core` from the outside, as a driver does; the core
never imports them.
"""
