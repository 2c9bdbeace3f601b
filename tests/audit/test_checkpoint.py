"""C2SP signed-note checkpoints (format section 5): exact bytes, verification, strict parsing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest

from ledger.audit.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    note_key_hash,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.audit.merkle import EMPTY_ROOT, inclusion_proof, root_hash, verify_inclusion
from ledger.crypto import SigningKey, verify

ORIGIN = "ledger.example/crcn"
ROOT = hashlib.sha256(b"some root").digest()
KEY = SigningKey.generate()
OTHER_KEY = SigningKey.generate()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sig_line(name: str, blob: bytes) -> str:
    return f"\u2014 {name} {b64(blob)}\n"


def note_for(cp: Checkpoint | None = None, key: SigningKey = KEY) -> str:
    return sign_checkpoint(cp or Checkpoint(ORIGIN, 7, ROOT), key)


def body_text(origin: str = ORIGIN, size: str = "7", root: str = b64(ROOT)) -> str:
    return f"{origin}\n{size}\n{root}\n"


# --- exact format -----------------------------------------------------------


def test_key_hash_is_sha256_of_name_newline_type_and_key() -> None:
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + KEY.public_raw).digest()[:4]
    assert note_key_hash(ORIGIN, KEY.public_raw) == expected


def test_signed_note_is_bit_exact() -> None:
    body = f"{ORIGIN}\n7\n{b64(ROOT)}\n".encode()
    assert Checkpoint(ORIGIN, 7, ROOT).body() == body
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + KEY.public_raw).digest()[:4]
    signature = KEY.sign(body)  # Ed25519 is deterministic
    expected = body.decode() + "\n" + "\u2014 " + ORIGIN + " " + b64(key_hash + signature) + "\n"
    assert note_for() == expected
    assert verify(KEY.public_raw, signature, body)


def test_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    note = note_for(cp)
    parsed, signatures = parse_checkpoint(note)
    assert parsed == cp
    [(name, key_hash, signature)] = signatures
    assert name == ORIGIN and key_hash == note_key_hash(ORIGIN, KEY.public_raw)
    assert len(signature) == 64
    assert verify_checkpoint(note, ORIGIN, [KEY.public_raw]) == cp


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    note = note_for(cp)
    assert note.startswith(f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n")
    assert verify_checkpoint(note, ORIGIN, [KEY.public_raw]) == cp


def test_checkpoint_root_backs_inclusion_proofs() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(13)]
    note = note_for(Checkpoint(ORIGIN, len(leaves), root_hash(leaves)))
    cp = verify_checkpoint(note, ORIGIN, [KEY.public_raw])
    proof = inclusion_proof(leaves, 9)
    assert verify_inclusion(9, cp.size, leaves[9], proof, cp.root)


# --- verification -----------------------------------------------------------


def test_any_trusted_key_will_do() -> None:
    cp = verify_checkpoint(note_for(), ORIGIN, [OTHER_KEY.public_raw, KEY.public_raw])
    assert cp.size == 7
    assert verify_checkpoint(note_for(), ORIGIN, iter([KEY.public_raw])).size == 7


def test_wrong_key_is_rejected() -> None:
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(note_for(), ORIGIN, [OTHER_KEY.public_raw])
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(note_for(), ORIGIN, [])


def test_wrong_origin_is_rejected() -> None:
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(note_for(), "ledger.example/other", [KEY.public_raw])


def test_signature_under_another_name_is_not_trusted() -> None:
    body = body_text()
    blob = note_key_hash(ORIGIN, KEY.public_raw) + KEY.sign(body.encode())
    note = body + "\n" + sig_line("someone.else/key", blob)
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(note, ORIGIN, [KEY.public_raw])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda n: n.replace("\n7\n", "\n8\n", 1),
        lambda n: n.replace(b64(ROOT), b64(hashlib.sha256(b"other").digest()), 1),
        lambda n: n.replace(ORIGIN + "\n", "ledger.example/crcm\n", 1),
    ],
    ids=["size", "root", "origin"],
)
def test_tampered_body_is_rejected(tamper: Callable[[str], str]) -> None:
    note = tamper(note_for())
    assert note != note_for()
    parse_checkpoint(note)  # still well-formed
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, ORIGIN, [KEY.public_raw])


def _resigned_blob(mutate: Callable[[bytes], bytes]) -> str:
    note = note_for()
    text, line = note.rsplit("\n\n", 1)
    blob = base64.b64decode(line.rsplit(" ", 1)[1])
    return f"{text}\n\n{sig_line(ORIGIN, mutate(blob))}"


def test_tampered_signature_is_rejected() -> None:
    note = _resigned_blob(lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(note, ORIGIN, [KEY.public_raw])
    truncated = _resigned_blob(lambda blob: blob[:-1])
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(truncated, ORIGIN, [KEY.public_raw])


def test_tampered_key_hash_makes_the_signature_unknown() -> None:
    note = _resigned_blob(lambda blob: bytes([blob[0] ^ 1]) + blob[1:])
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(note, ORIGIN, [KEY.public_raw])


def test_unknown_signatures_are_ignored() -> None:
    note = note_for()
    cosignature = sig_line("witness.example/w1", b"\x12\x34\x56\x78" + bytes(72))
    other = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), OTHER_KEY).rsplit("\n\n", 1)[1]
    extended = note + cosignature + other
    _, signatures = parse_checkpoint(extended)
    assert [name for name, _, _ in signatures] == [ORIGIN, "witness.example/w1", ORIGIN]
    assert verify_checkpoint(extended, ORIGIN, [KEY.public_raw]).size == 7
    assert verify_checkpoint(extended, ORIGIN, [OTHER_KEY.public_raw]).size == 7


def test_a_failing_trusted_signature_rejects_the_note() -> None:
    """C2SP: a known key's signature that fails to verify rejects the whole note."""
    good = note_for()
    bad_blob = note_key_hash(ORIGIN, KEY.public_raw) + bytes(64)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(good + sig_line(ORIGIN, bad_blob), ORIGIN, [KEY.public_raw])


def test_malformed_trusted_key_is_refused() -> None:
    with pytest.raises(CheckpointError, match="32 bytes"):
        verify_checkpoint(note_for(), ORIGIN, [KEY.public_raw[:31]])


# --- strict parsing ---------------------------------------------------------

SIG = sig_line(ORIGIN, b"\x01\x02\x03\x04" + bytes(64))
NON_CANONICAL_ROOT = "A" * 42 + "B="  # decodes to 32 zero bytes, but is not b64(bytes(32))

MALFORMED = {
    "empty": "",
    "no final newline": body_text() + "\n" + SIG[:-1],
    "no blank line": body_text() + SIG,
    "no signature": body_text() + "\n",
    "extra blank line at end": body_text() + "\n" + SIG + "\n",
    "two body lines": f"{ORIGIN}\n7\n\n" + SIG,
    "extension line": body_text() + "extension\n\n" + SIG,
    "blank body line": f"{ORIGIN}\n\n7\n{b64(ROOT)}\n\n" + SIG,
    "empty origin": body_text(origin="") + "\n" + SIG,
    "origin with space": body_text(origin="ledger example") + "\n" + SIG,
    "origin with plus": body_text(origin="ledger+example") + "\n" + SIG,
    "size leading zero": body_text(size="07") + "\n" + SIG,
    "size plus": body_text(size="+7") + "\n" + SIG,
    "size negative": body_text(size="-7") + "\n" + SIG,
    "size space": body_text(size=" 7") + "\n" + SIG,
    "size float": body_text(size="7.0") + "\n" + SIG,
    "size underscore": body_text(size="1_000") + "\n" + SIG,
    "size unicode digits": body_text(size="\u0667") + "\n" + SIG,
    "size too large": body_text(size=str(2**64)) + "\n" + SIG,
    "size empty": body_text(size="") + "\n" + SIG,
    "root not base64": body_text(root="not base64!") + "\n" + SIG,
    "root unpadded": body_text(root=b64(ROOT).rstrip("=")) + "\n" + SIG,
    "root 31 bytes": body_text(root=b64(ROOT[:31])) + "\n" + SIG,
    "root 33 bytes": body_text(root=b64(ROOT + b"\x00")) + "\n" + SIG,
    "root non-canonical": body_text(root=NON_CANONICAL_ROOT) + "\n" + SIG,
    "hyphen instead of em dash": body_text() + "\n" + SIG.replace("\u2014", "-"),
    "en dash": body_text() + "\n" + SIG.replace("\u2014", "\u2013"),
    "no space after dash": body_text() + "\n" + SIG.replace("\u2014 ", "\u2014"),
    "no key name": body_text() + "\n" + f"\u2014  {b64(bytes(68))}\n",
    "no signature after name": body_text() + "\n" + f"\u2014 {ORIGIN}\n",
    "two spaces before signature": body_text() + "\n" + f"\u2014 {ORIGIN}  {b64(bytes(68))}\n",
    "key name with plus": body_text() + "\n" + sig_line("a+b", bytes(68)),
    "signature not base64": body_text() + "\n" + f"\u2014 {ORIGIN} %%%%\n",
    "signature too short": body_text() + "\n" + sig_line(ORIGIN, b"\x01\x02\x03\x04"),
    "signature with trailing text": body_text() + "\n" + SIG[:-1] + " extra\n",
    "CRLF line endings": (body_text() + "\n" + SIG).replace("\n", "\r\n"),
    "tab": body_text(origin="ledger\texample") + "\n" + SIG,
    "NUL": body_text() + "\n" + SIG + "\x00\n",
    "lone surrogate": body_text(origin="ledger\ud800") + "\n" + SIG,
    "too many signatures": body_text() + "\n" + SIG * (MAX_SIGNATURES + 1),
}


@pytest.mark.parametrize("note", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_notes_are_rejected_with_one_line(note: str) -> None:
    with pytest.raises(CheckpointError) as info:
        parse_checkpoint(note)
    message = str(info.value)
    assert message and "\n" not in message
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, ORIGIN, [KEY.public_raw])


def test_the_malformed_cases_are_otherwise_well_formed() -> None:
    """Guards the table above: the same note without the defect parses."""
    cp, signatures = parse_checkpoint(body_text() + "\n" + SIG)
    assert cp == Checkpoint(ORIGIN, 7, ROOT) and len(signatures) == 1
    assert base64.b64decode(NON_CANONICAL_ROOT) == bytes(32)
    parse_checkpoint(body_text() + "\n" + SIG * MAX_SIGNATURES)


def test_non_text_note_is_rejected() -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(note_for().encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 1, ROOT),
        ("has space", 1, ROOT),
        ("has\nnewline", 1, ROOT),
        ("a+b", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, "7", ROOT),
        (ORIGIN, 1, ROOT[:31]),
        (ORIGIN, 1, b64(ROOT)),
    ],
)
def test_invalid_checkpoints_cannot_be_built(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(origin, size, root)
