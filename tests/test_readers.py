"""artlib.data.readers: reading and validating classes.csv and the ArtEmis CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlib.errors import DataError
from artlib.data.readers import parse_genre_list, read_artemis, read_classes

ARTEMIS_TEXT = "art_style,painting,emotion,utterance,repetition\nImpressionism,claude-monet_x,awe,Nice,1\n"
CLASSES_TEXT = ("filename,artist,genre,description,phash,width,height,genre_count,subset\n"
                "Impressionism/claude-monet_x.jpg,claude-monet,['Impressionism'],x,00ff,10,12,1,train\n")


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write text (in ``encoding``) or raw bytes to ``path`` and return it."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def test_reads_a_plain_artemis_file(tmp_path: Path) -> None:
    """A well-formed file reads as strings, with all known columns and clean notes."""
    frame, notes = read_artemis(write(tmp_path / "a.csv", ARTEMIS_TEXT))
    assert list(frame.columns) == ["art_style", "painting", "emotion", "utterance", "repetition"]
    assert frame.to_dict(orient="records") == [
        {"art_style": "Impressionism", "painting": "claude-monet_x", "emotion": "awe", "utterance": "Nice",
         "repetition": "1"}]
    assert (notes.encoding, notes.delimiter, notes.rows, notes.warnings) == ("utf-8", ",", 1, [])


def test_reads_a_plain_classes_file_keeping_strings(tmp_path: Path) -> None:
    """classes.csv reads as strings: a hex phash like '00ff' and numbers are not converted."""
    frame, notes = read_classes(write(tmp_path / "classes.csv", CLASSES_TEXT))
    assert frame.loc[0, "phash"] == "00ff"
    assert frame.loc[0, "width"] == "10"
    assert frame.loc[0, "genre"] == "['Impressionism']"
    assert notes.rows == 1


def test_unknown_columns_are_dropped(tmp_path: Path) -> None:
    """Columns artlib does not know are not carried along."""
    frame, _ = read_artemis(write(tmp_path / "a.csv", "art_style,painting,emotion,extra\nCubism,x,fear,zzz\n"))
    assert list(frame.columns) == ["art_style", "painting", "emotion"]


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a DataError naming it."""
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found") as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory where the CSV should be is a DataError naming it."""
    with pytest.raises(DataError, match="is a directory") as exc:
        read_classes(tmp_path)
    assert str(tmp_path) in str(exc.value)


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\r\n"], ids=["zero-bytes", "blank-lines", "crlf"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    """An empty (or whitespace-only) file is a DataError saying so, with the path."""
    path = write(tmp_path / "empty.csv", data)
    with pytest.raises(DataError, match="empty") as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


def test_header_only(tmp_path: Path) -> None:
    """A header without rows is a DataError saying so, with the path."""
    path = write(tmp_path / "h.csv", "art_style,painting,emotion,utterance,repetition\n")
    with pytest.raises(DataError, match="header but no rows") as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


def test_missing_column(tmp_path: Path) -> None:
    """A missing column is named (no close match offered), with the path and what was found."""
    path = write(tmp_path / "a.csv", "art_style,emotion\nCubism,awe\n")
    with pytest.raises(DataError) as exc:
        read_artemis(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "'painting'" in msg
    assert "misspelt" not in msg
    assert "art_style, emotion" in msg  # what the header has


def test_misspelt_column_names_file_column_and_close_match(tmp_path: Path) -> None:
    """A misspelt column: the error names the file, the wanted column and the close match found."""
    path = write(tmp_path / "artemis.csv", "art_style,paintng,emotion\nCubism,x,awe\n")
    with pytest.raises(DataError) as exc:
        read_artemis(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "'painting'" in msg
    assert "found 'paintng'" in msg


def test_misspelt_classes_column(tmp_path: Path) -> None:
    """The same for classes.csv: 'file_name' is suggested for 'filename'."""
    path = write(tmp_path / "classes.csv", CLASSES_TEXT.replace("filename", "file_name", 1))
    with pytest.raises(DataError) as exc:
        read_classes(path)
    msg = str(exc.value)
    assert str(path) in msg and "'filename'" in msg and "found 'file_name'" in msg


def test_several_missing_columns_all_named(tmp_path: Path) -> None:
    """Every missing column is listed (case differences are offered as close matches)."""
    path = write(tmp_path / "a.csv", "Art_Style,Painting,Emotion\nCubism,x,awe\n")
    with pytest.raises(DataError, match="required columns") as exc:
        read_artemis(path)
    msg = str(exc.value)
    for wanted, found in (("art_style", "Art_Style"), ("painting", "Painting"), ("emotion", "Emotion")):
        assert f"'{wanted}' (found '{found}'" in msg


@pytest.mark.parametrize("delimiter, shown", [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")])
def test_other_delimiters(tmp_path: Path, delimiter: str, shown: str) -> None:
    """Semicolon, tab and pipe files are read correctly, with a note naming the delimiter."""
    text = ARTEMIS_TEXT.replace(",", delimiter)
    frame, notes = read_artemis(write(tmp_path / "a.csv", text))
    assert notes.delimiter == delimiter
    assert frame.loc[0, "painting"] == "claude-monet_x"
    assert frame.loc[0, "utterance"] == "Nice"
    assert len(notes.warnings) == 1 and shown in notes.warnings[0]


def test_semicolon_file_with_commas_inside_values(tmp_path: Path) -> None:
    """A semicolon file whose utterances contain commas keeps them inside the value."""
    text = "art_style;painting;emotion;utterance\nCubism;x;awe;calm, bright, warm\n"
    frame, notes = read_artemis(write(tmp_path / "a.csv", text))
    assert notes.delimiter == ";"
    assert frame.loc[0, "utterance"] == "calm, bright, warm"


def test_cp1252_file_is_read_with_a_warning(tmp_path: Path) -> None:
    """A cp1252 (Windows) file reads correctly; the notes say so."""
    text = "art_style,painting,emotion,utterance\nImpressionism,joaquín-sorolla_x,awe,Très belle – oui\n"
    path = write(tmp_path / "a.csv", text, encoding="cp1252")
    frame, notes = read_artemis(path)
    assert frame.loc[0, "painting"] == "joaquín-sorolla_x"
    assert frame.loc[0, "utterance"] == "Très belle – oui"
    assert notes.encoding == "cp1252"
    assert len(notes.warnings) == 1 and "cp1252" in notes.warnings[0] and str(path) in notes.warnings[0]


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    """A UTF-8 BOM does not end up in the first column's name."""
    frame, notes = read_artemis(write(tmp_path / "a.csv", b"\xef\xbb\xbf" + ARTEMIS_TEXT.encode()))
    assert list(frame.columns)[0] == "art_style"
    assert notes.encoding == "utf-8-sig"
    assert notes.warnings == []


def test_crlf_and_padded_header(tmp_path: Path) -> None:
    """Windows line ends and spaces around column names are tolerated."""
    frame, _ = read_artemis(write(tmp_path / "a.csv", " art_style , painting ,emotion\r\nCubism,x,awe\r\n"))
    assert list(frame.columns) == ["art_style", "painting", "emotion"]
    assert frame.to_dict(orient="records") == [{"art_style": "Cubism", "painting": "x", "emotion": "awe"}]


def test_empty_cells_are_missing_values(tmp_path: Path) -> None:
    """An empty cell reads as NA (so prepare can count it), other cells stay strings."""
    frame, _ = read_artemis(write(tmp_path / "a.csv", "art_style,painting,emotion\nCubism,,awe\n"))
    assert frame["painting"].isna().tolist() == [True]
    assert frame.loc[0, "emotion"] == "awe"


def test_unterminated_quote_is_a_data_error(tmp_path: Path) -> None:
    """A broken quote is a DataError naming the file, not a pandas traceback."""
    path = write(tmp_path / "a.csv", 'art_style,painting,emotion\nCubism,"x,awe\nB,y,awe\n')
    with pytest.raises(DataError, match="cannot parse") as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


def test_row_with_too_many_fields_is_an_error(tmp_path: Path) -> None:
    """A data row with more fields than the header is a DataError naming the file (not silently cut)."""
    path = write(tmp_path / "a.csv", "art_style,painting,emotion\nCubism,x,awe\nCubism,y,fear,EXTRA\n")
    with pytest.raises(DataError) as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


def test_unquoted_comma_in_first_row_does_not_shift_columns(tmp_path: Path) -> None:
    """An unquoted comma in the first row is an error, never a silent column shift."""
    path = write(tmp_path / "a.csv", "art_style,painting,emotion,utterance\nCubism,x,awe,calm, warm\nCubism,y,fear,dark\n")
    with pytest.raises(DataError) as exc:
        read_artemis(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("value, expected", [
    ("['Post Impressionism']", ["Post_Impressionism"]),
    ("['Impressionism', 'Post Impressionism']", ["Impressionism", "Post_Impressionism"]),
    ('["Art Nouveau Modern"]', ["Art_Nouveau_Modern"]),
    ("[ 'Ukiyo e' ]", ["Ukiyo_e"]),
    ("['Naive Art  Primitivism']", ["Naive_Art_Primitivism"]),
    ("Impressionism", ["Impressionism"]),
    ("Pop Art, Minimalism", ["Pop_Art", "Minimalism"]),
    ("Impressionism; Cubism", ["Impressionism", "Cubism"]),
    ("[]", []),
    ("", []),
    ("   ", []),
    (None, []),
    (float("nan"), []),
    (3, []),
])
def test_parse_genre_list(value: object, expected: list[str]) -> None:
    """List-strings, bare names and empties parse into folder-style names."""
    assert parse_genre_list(value) == expected
