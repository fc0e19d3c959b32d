"""Sizes every layer must agree on, from the client port down to the transport."""

# The largest log entry respkv ever makes (max-entry-bytes can only lower it): the
# Raft port's frames carry one with room to spare, so a write either replicates or is
# refused before it is proposed (a frame too big for a peer would be refused by it on
# every retry, and the leader would lose its followers).
MAX_ENTRY_BYTES = 63 << 20
