"""The interactive shell: input, completion, highlighting, rendering and the live view."""
