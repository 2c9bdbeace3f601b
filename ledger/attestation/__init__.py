"""Attestations candidates download: the PDF, its PAdES signature, its X.509 identity."""
