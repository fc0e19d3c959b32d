"""Replication: each Raft group's driver, the node hosting the groups, the Raft port
(transport), membership and the slot map. Answers the layers above with plain
outcomes; never imports them."""
