"""artlib.data.names: mojibake repair and the canonical join key."""

from __future__ import annotations

import unicodedata

import pytest

from artlib.data.names import canonical_name, repair_mojibake

ACCENTED = ("joaquín-sorolla", "zdzisław-beksiński", "józef-mehoffer", "édouard-vuillard", "mikalojus-čiurlionis",
            "albrecht-dürer", "żółć", "nguyễn-phan-chánh", "qi-baishi-齐白石", "ivan-aivazovsky-айвазовский")


def mojibake(text: str, encoding: str = "latin-1", lower: bool = False) -> str:
    """UTF-8 bytes of ``text`` decoded as ``encoding`` (as ArtEmis spells some names), optionally lower-cased."""
    out = text.encode("utf-8").decode(encoding)
    return out.lower() if lower else out


def test_the_artemis_example_is_repaired() -> None:
    """The example from the design notes: 'joaquã\\xadn' is 'joaquín'."""
    assert repair_mojibake("joaquã\xadn-sorolla_sewing-the-sail-1896") == "joaquín-sorolla_sewing-the-sail-1896"


@pytest.mark.parametrize("name", ACCENTED)
@pytest.mark.parametrize("lower", [False, True], ids=["as-is", "lower-cased"])
def test_latin1_mojibake_is_repaired(name: str, lower: bool) -> None:
    """UTF-8 read as Latin-1 (and lower-cased afterwards) comes back exactly."""
    bad = mojibake(name, "latin-1", lower)
    assert bad != name
    assert repair_mojibake(bad) == name


@pytest.mark.parametrize("name", ["joaquín-sorolla", "zdzisław-beksiński", "józef-mehoffer", "édouard-vuillard",
                                  "albrecht-dürer", "żółć", "nguyễn-phan-chánh", "zdzisław-łódź-ś"])
@pytest.mark.parametrize("lower", [False, True], ids=["as-is", "lower-cased"])
def test_cp1252_mojibake_is_repaired(name: str, lower: bool) -> None:
    """UTF-8 read as cp1252 (printable characters where Latin-1 has C1 controls) comes back too."""
    bad = mojibake(name, "cp1252", lower)
    assert bad != name
    assert repair_mojibake(bad) == name


def test_cp1252_specific_characters() -> None:
    """cp1252-only characters ('‚' for 0x82, '›' for 0x9B, '„' for 0x84) are read as their bytes."""
    assert repair_mojibake("zdzisÅ‚aw") == "zdzisław"  # ł = C5 82
    assert repair_mojibake("Å›wit") == "świt"  # ś = C5 9B
    assert repair_mojibake("beksiÅ„ski") == "beksiński"  # ń = C5 84


def test_mixed_latin1_and_cp1252_bytes() -> None:
    """A byte cp1252 leaves undefined (0x8D) stays a Latin-1 control character; both kinds mix in one name."""
    bad = "mikalojus-Ä\x8diurlionis-Å‚"  # č = C4 8D (Latin-1 form), ł = C5 82 (cp1252 form)
    assert repair_mojibake(bad) == "mikalojus-čiurlionis-ł"


@pytest.mark.parametrize("name, encoding", [
    ("joaquín", "latin-1"), ("zdzisław-beksiński", "latin-1"), ("qi-baishi-齐白石", "latin-1"),
    ("joaquín", "cp1252"), ("zdzisław-beksiński", "cp1252"),
])
def test_double_encoding_is_repaired(name: str, encoding: str) -> None:
    """Names mojibaked twice are undone by the two passes (also when lower-cased)."""
    twice = mojibake(mojibake(name, encoding), encoding)
    assert repair_mojibake(twice) == name
    assert repair_mojibake(twice.lower()) == name


@pytest.mark.parametrize("name", ["ertuğrul", "объект"])
def test_lowercased_cp1252_mojibake_of_continuation_letters(name: str) -> None:
    """Lower-cased cp1252 mojibake whose continuation byte has a cp1252 case pair is repaired."""
    assert repair_mojibake(mojibake(name, "cp1252", lower=True)) == name


@pytest.mark.parametrize("name", ["claude-monet_water-lilies-1916", "Claude Monet", "a/b\\c", "", "100%_ascii-~!"])
def test_ascii_fast_path_unchanged(name: str) -> None:
    """ASCII names are returned as they are by the repair (the same object: the fast path)."""
    assert repair_mojibake(name) is name


@pytest.mark.parametrize("name", [*ACCENTED, "São-paulo", "ação", "naïve", "Ñandú", "straße", "façade", "Âge",
                                  "dÿ", "ØÐÞ", "©-2001", "a°b", "Ã"])
def test_legit_accented_names_unchanged(name: str) -> None:
    """Correctly spelt non-ASCII names (NFC) are not 'repaired' into something else."""
    assert repair_mojibake(name) == name
    assert canonical_name(name) == name


def test_canonical_name_nfd_and_nfc_meet() -> None:
    """NFD (as macOS file systems store names) and NFC give the same key, which is NFC."""
    nfc = "joaquín-sorolla_x.jpg"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    assert canonical_name(nfd) == nfc
    assert canonical_name(nfc) == nfc
    assert unicodedata.is_normalized("NFC", canonical_name(nfd))


def test_canonical_name_mojibake_of_nfd_text() -> None:
    """Mojibake made from NFD text (combining accent as 'Ì\\x81') repairs and normalises to NFC."""
    bad = mojibake(unicodedata.normalize("NFD", "joaquín"), "latin-1")
    assert bad == "joaquiÌ\x81n"
    assert canonical_name(bad) == "joaquín"


def test_canonical_name_all_three_spellings_meet() -> None:
    """Mojibake (lower-cased), NFD and NFC spellings of one path share one key."""
    nfc = "Impressionism/joaquín-sorolla_x.jpg"
    lowered = mojibake(nfc, "latin-1", lower=True).replace("impressionism", "Impressionism")
    spellings = {nfc, unicodedata.normalize("NFD", nfc), lowered}
    assert len(spellings) == 3
    assert {canonical_name(s) for s in spellings} == {nfc}


@pytest.mark.parametrize("given, expected", [
    ("Impressionism\\monet.jpg", "Impressionism/monet.jpg"),
    ("Impressionism\\joaquín.jpg", "Impressionism/joaquín.jpg"),
    ("Impressionism/monet.jpg", "Impressionism/monet.jpg"),
])
def test_canonical_name_forward_slashes(given: str, expected: str) -> None:
    """Backslashes become forward slashes (ASCII and non-ASCII paths alike)."""
    assert canonical_name(given) == expected


def test_canonical_name_keeps_case() -> None:
    """The key is case-preserving (case-insensitive matching is a separate, later step)."""
    assert canonical_name("Impressionism/Claude-Monet.jpg") == "Impressionism/Claude-Monet.jpg"
