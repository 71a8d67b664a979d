"""Painting and file names: mojibake repair, Unicode normalisation, the join key.

ArtEmis spells some painting names as mojibake: the UTF-8 bytes of a name decoded as
Latin-1/cp1252 and then lower-cased (``joaquín`` became ``joaquã­n``). File systems and
CSVs also disagree on Unicode normalisation (NFC ``é`` vs NFD ``e`` + combining accent).
Both sides of every join therefore go through :func:`canonical_name`.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from itertools import product

# cp1252 puts printable characters where Latin-1 has C1 controls (0x80-0x9F); mojibake made
# with cp1252 shows these characters instead of the raw bytes.
_CP1252_TO_BYTE = {
    bytes([b]).decode("cp1252"): b
    for b in range(0x80, 0xA0)
    if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


def _byte_of(ch: str) -> int | None:
    """The byte a mojibake character stands for (Latin-1 or cp1252), or None."""
    o = ord(ch)
    if o < 0x100:
        return o
    return _CP1252_TO_BYTE.get(ch)


# Lower-casing cp1252 mojibake turns the continuation characters Š Œ Ž Ÿ into š œ ž ÿ.
_LOWERED_CONTINUATION = {"š": 0x8A, "œ": 0x8C, "ž": 0x8E, "ÿ": 0x9F}


def _continuation_of(ch: str) -> int | None:
    """The UTF-8 continuation byte a mojibake character stands for, also after lower-casing, or None."""
    b = _byte_of(ch)
    if _is_continuation(b):
        return b
    return _LOWERED_CONTINUATION.get(ch)


def _is_continuation(b: int | None) -> bool:
    """True for a UTF-8 continuation byte (10xxxxxx)."""
    return b is not None and 0x80 <= b <= 0xBF


def _seq_len(lead: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts (0 if it is no lead byte)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _repair_once(text: str, guess_lowered: bool = True) -> str:
    """One pass of mojibake repair; characters that form no valid UTF-8 sequence are kept.

    With ``guess_lowered``, a continuation letter after a lower-cased lead byte is read as the upper-case
    letter it was lowered from (š as 0x8A); without it, every character stands for its own byte.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        lead = _byte_of(text[i])
        if lead is not None and lead >= 0xC0:
            # Try the lead byte as it is, then (for lower-cased mojibake) its upper-case form.
            candidates = [lead]
            if 0xE0 <= lead <= 0xFE and lead != 0xF7:
                candidates.append(lead - 0x20)
            for cand in candidates:
                length = _seq_len(cand)
                if length and i + length <= n:
                    lowered = guess_lowered and cand != lead  # lower-cased: its continuation letters were too
                    tail = [(_LOWERED_CONTINUATION.get(c) if lowered else None) or _continuation_of(c)
                            for c in text[i + 1 : i + length]]
                    if all(_is_continuation(b) for b in tail):
                        try:
                            out.append(bytes([cand, *tail]).decode("utf-8"))  # type: ignore[list-item]
                        except UnicodeDecodeError:
                            continue
                        i += length
                        break
            else:
                out.append(text[i])
                i += 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@lru_cache(maxsize=None)
def repair_mojibake(text: str) -> str:
    """Undo UTF-8-read-as-Latin-1/cp1252 mojibake, also when it was lower-cased afterwards."""
    if text.isascii():
        return text
    for _ in range(2):  # doubly-encoded names exist; two passes undo them
        repaired = _repair_once(text)
        if repaired == text:
            break
        text = repaired
    return text


@lru_cache(maxsize=None)
def canonical_name(text: str) -> str:
    """The join key of a name or relative path: mojibake repaired, NFC, forward slashes."""
    if text.isascii():
        return text.replace("\\", "/")
    return unicodedata.normalize("NFC", repair_mojibake(text)).replace("\\", "/")


_AMBIGUOUS = {"š": "Š", "œ": "Œ", "ž": "Ž"}
"""Lower-casing cp1252 mojibake turns Š Œ Ž (bytes 0x8A 0x8C 0x8E) into š œ ž — which are also bytes 0x9A 0x9C 0x9E."""


def repair_candidates(text: str, limit: int = 6) -> list[str]:
    """Every plausible repair of a name, the default (:func:`canonical_name`) first.

    Where lower-cased mojibake holds an ambiguous continuation letter (š œ ž), each reading is tried;
    callers keep the candidate that matches a file or a classes.csv name. More than ``limit`` ambiguous
    letters are not expanded (2^limit candidates).
    """
    default = canonical_name(text)
    positions = [i for i, ch in enumerate(text) if ch in _AMBIGUOUS]
    if not positions or len(positions) > limit:
        return [default]
    out = [default]
    for choice in product((False, True), repeat=len(positions)):
        chars = list(text)
        for pos, upper in zip(positions, choice):
            if upper:
                chars[pos] = _AMBIGUOUS[chars[pos]]
        repaired = _repair_once(_repair_once("".join(chars), guess_lowered=False), guess_lowered=False)
        candidate = unicodedata.normalize("NFC", repaired).replace("\\", "/")
        if candidate not in out:
            out.append(candidate)
    return out
