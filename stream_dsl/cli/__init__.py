"""The `stream-dsl` command line."""
