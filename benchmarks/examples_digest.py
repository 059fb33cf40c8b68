"""One fingerprint of a split's (history, target) examples, computed the same way on both sides of
recbole_compare.py (seqrec's venv and RecBole's): plain Python, no imports beyond the standard library."""

from __future__ import annotations

import hashlib
import json


def examples_digest(examples) -> str:
    """sha256 of ``(history items, target item)`` pairs written with the source files' item ids, sorted (the two
    libraries number and order examples differently); equal digests mean the same examples."""
    rows = sorted(json.dumps([[str(item) for item in history], str(target)], ensure_ascii=False)
                  for history, target in examples)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
