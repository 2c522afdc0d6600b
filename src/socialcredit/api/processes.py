"""What the server's processes agree on (`socialcredit serve`: a supervisor, one writer, readers), in a module of
its own that imports nothing.

Why apart: the supervisor only starts, watches and stops the others. Taking these constants from the writer's
or the app's module made it import the whole web stack and the core for three names (0.7 s more before it could
start the writer, of a server start of about five seconds here, paid again at every restart after a crash).
"""

from __future__ import annotations

SHUTDOWN_GRACE_S = 3
"""How long SIGTERM waits for requests in flight before the server closes anyway (well under 5 s).
A batch being written when the process ends is one transaction: committed whole or rolled back whole."""

TOKEN_ENV = "SOCIALCREDIT_INTERNAL_TOKEN"
"""The environment variable carrying the secret the readers show the writer (set by the supervisor)."""

TOKEN_HEADER = "x-socialcredit-internal"
"""The header a reader sends that secret in, on the writer's internal routes."""
