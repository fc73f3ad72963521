"""The `loreguard` command line and the local-stack supervisor: thin front ends over the operations layer."""
