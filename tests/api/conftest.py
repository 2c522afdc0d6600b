"""The scored sample store with a key per role (`base`) and a fresh client over a copy of it (`api`),
shared by every API test module."""

from test_api import api, base  # noqa: F401
