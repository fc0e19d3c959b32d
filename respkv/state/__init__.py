"""The replicated state: the keyspace and its views, value types and their codec, and
the state machine that applies log entries to them. Knows nothing of Raft."""
