"""Shipped rulebooks: one YAML file per jurisdiction version, named <jurisdiction>@<version>.yaml."""
