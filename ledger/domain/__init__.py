"""The CRCN domain: referential, positioning profile, certification rules."""
