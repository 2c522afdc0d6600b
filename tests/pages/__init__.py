"""Page tests (a package, so its conftest does not shadow the top-level tests/conftest.py module)."""
