"""The replicated cluster: Raft groups driven over TCP under the RESP server."""
