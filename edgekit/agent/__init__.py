"""The on-device agent: server, store, isolated worker, client."""
