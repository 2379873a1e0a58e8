"""Reaching nodes: transports, host keys, the agent session, deploy, the connection pool, probes."""
