"""Helpers shared by the tests, the benchmarks and the fault suite: free ports, real
respkv processes started and stopped by PID, waiting on conditions, reading INFO.

Not part of respkv: nothing here ships in the wheel.
"""
