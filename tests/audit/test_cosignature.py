"""Witness cosignatures (C2SP tlog-cosignature v1) and verifier keys."""

from __future__ import annotations

import base64
import struct

import pytest

from ledger.audit.checkpoint import Checkpoint, CheckpointError, sign_checkpoint
from ledger.audit.cosignature import (
    cosign,
    parse_vkey,
    signed_message,
    verified_cosigners,
    with_cosignatures,
    witness_vkey,
)
from ledger.crypto import SigningKey, sha256, verify

ORIGIN = "ledger.example/log"
NAME = "witness.example/w1"


@pytest.fixture
def note() -> str:
    cp = Checkpoint(ORIGIN, 42, sha256(b"root"))
    return sign_checkpoint(cp, SigningKey.generate())


def body_of(note: str) -> bytes:
    return note[: note.rindex("\n\n") + 1].encode()


def test_a_cosignature_line_is_key_id_timestamp_and_signature_over_the_v1_message(note) -> None:
    key = SigningKey.generate()
    line = cosign(body_of(note), NAME, key, 1679315147)
    assert line.startswith(f"\u2014 {NAME} ") and line.endswith("\n")
    blob = base64.b64decode(line.split()[-1])
    assert blob[:4] == sha256(NAME.encode() + b"\n\x04" + key.public_raw)[:4]
    assert struct.unpack(">Q", blob[4:12]) == (1679315147,)
    message = b"cosignature/v1\ntime 1679315147\n" + body_of(note)
    assert signed_message(body_of(note), 1679315147) == message
    assert verify(key.public_raw, blob[12:], message)


def test_trusted_cosigners_are_found_and_unknown_ones_ignored(note) -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    lines = [cosign(body_of(note), NAME, ours, 100), cosign(body_of(note), "other/w", theirs, 7)]
    cosigned = with_cosignatures(note, lines)
    assert with_cosignatures(cosigned, lines) == cosigned  # duplicates dropped
    assert verified_cosigners(cosigned, [witness_vkey(NAME, ours)]) == {NAME: 100}
    assert verified_cosigners(note, [witness_vkey(NAME, ours)]) == {}


def test_a_cosignature_for_another_checkpoint_is_an_alarm(note) -> None:
    key = SigningKey.generate()
    other = sign_checkpoint(Checkpoint(ORIGIN, 43, sha256(b"fork")), SigningKey.generate())
    forged = with_cosignatures(note, [cosign(body_of(other), NAME, key, 100)])
    with pytest.raises(CheckpointError, match="does not verify"):
        verified_cosigners(forged, [witness_vkey(NAME, key)])


def test_verifier_keys_round_trip_and_refuse_mismatches() -> None:
    vkey = witness_vkey(NAME, SigningKey.generate())
    assert parse_vkey(str(vkey)) == vkey
    name, key_id, blob = str(vkey).split("+", 2)
    for bad in (f"{name}+00000000+{blob}", f"other/w+{key_id}+{blob}", f"{name}+{key_id}", "x"):
        with pytest.raises(CheckpointError):
            parse_vkey(bad)
