"""Versioned referential data files shipped with the service."""
