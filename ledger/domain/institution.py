"""Schools and admission platforms that receive results (docs/domain.md, "Institutions").

A school is named by its UAI (unité administrative immatriculée): seven digits
and a letter. A candidate registered with a `school` is one of its pupils, so
the school's records (livret scolaire) and higher-education admission read
results without anyone retyping them.
"""

from __future__ import annotations

import re

UAI = re.compile(r"[0-9]{7}[A-Z]")
UAI_ANCHORED = r"^[0-9]{7}[A-Z]\Z"
UAI_FORMAT = "7 digits and an upper-case letter, e.g. 0350022K"
ADMISSION_SCOPE = "admission-platform"
INSTITUTION_PREFIX = "institution:"


def is_uai(value: object) -> bool:
    """True for a well-formed UAI; the checksum letter is not checked (no official algorithm)."""
    return isinstance(value, str) and UAI.fullmatch(value) is not None


def institution_scope(uai: str) -> str:
    return f"{INSTITUTION_PREFIX}{uai}"
