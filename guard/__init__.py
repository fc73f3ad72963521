"""The guard at the edge: what untrusted input (a source's address, bytes, feed, folder) meets before any stage."""
