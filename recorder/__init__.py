"""The recorder: every session's events in a durable log, snapshots, and the replay read from them."""
