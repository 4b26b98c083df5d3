"""Temporal bootstrap: client factory, embedded dev server, search attributes."""
