"""The passport machine readable zone (ICAO 9303 TD3): check digits, OCR repairs, fields and dates."""

from __future__ import annotations

import datetime as dt

import pytest

from identity import mrz

# The specimen of ICAO Doc 9303 part 4 (Utopia, Anna Maria Eriksson): every check digit is right.
SPECIMEN = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TODAY = dt.date(2026, 12, 1)


def test_check_digits_of_the_icao_specimen() -> None:
    line2 = SPECIMEN[1]
    assert mrz.check_digit("L898902C3") == "6" and mrz.check_digit("740812") == "2"
    assert mrz.check_digit("120415") == "9" and mrz.check_digit("ZE184226B<<<<<") == "1"
    assert mrz.check_digit(line2[0:10] + line2[13:20] + line2[21:43]) == "0"
    with pytest.raises(ValueError, match="cannot appear"):
        mrz.char_value("a")


def test_specimen_fields() -> None:
    passport = mrz.parse(*SPECIMEN, TODAY)
    assert passport.errors == ()
    assert passport.fields == {
        "document_code": "P",
        "issuing_state": "UTO",
        "surname": "ERIKSSON",
        "given_names": "ANNA MARIA",
        "name": "ERIKSSON ANNA MARIA",
        "number": "L898902C3",
        "nationality": "UTO",
        "sex": "F",
        "birth_date": "1974-08-12",
        "valid_until": "2012-04-15",
        "personal_number": "ZE184226B",
    }


@pytest.mark.parametrize(
    ("position", "char", "errors"),
    [
        (3, "7", ("mrz_number", "mrz_composite")),
        (15, "1", ("mrz_birth", "mrz_composite")),
        (24, "8", ("mrz_expiry", "mrz_composite")),
        (30, "X", ("mrz_personal", "mrz_composite")),
        (43, "1", ("mrz_composite",)),
    ],
)
def test_one_changed_character_is_caught(position: int, char: str, errors: tuple[str, ...]) -> None:
    line2 = SPECIMEN[1][:position] + char + SPECIMEN[1][position + 1 :]
    assert mrz.parse(SPECIMEN[0], line2, TODAY).errors == errors


def test_ocr_confusions_and_dropped_filler_are_repaired() -> None:
    texts = ["PASSPORT", "P<UTOERIKSSON<<ANNA<MARIA<<<", "L898902C36UT07408I22F12O4159ZE184226B«<<<10"]
    assert mrz.find_lines(texts) == SPECIMEN
    assert mrz.find_lines(["P<UTOERIKSSON", "L898902C36UTO"]) is None  # line 2 must be whole
    assert mrz.find_lines([SPECIMEN[1]]) is None  # and follow a line 1
    assert mrz.find_lines(["姓名 王小梅", "公民身份号码 310115198511230029"]) is None


def line2(birth: str, expiry: str, birth_check: str | None = None) -> str:
    """A data page's line 2 with right check digits (unless ``birth_check`` is given)."""
    body = f"EH12345677CHN{birth}{birth_check or mrz.check_digit(birth)}F{expiry}{mrz.check_digit(expiry)}" + "<" * 15
    return body + mrz.check_digit(body[0:10] + body[13:20] + body[21:43])


def test_two_digit_years() -> None:
    line1 = "P<CHNWANG<<XIAOMEI<<<<<<<<<<<<<<<<<<<<<<<<<<"
    passport = mrz.parse(line1, line2("190505", "310509"), TODAY)
    assert passport.errors == () and passport.birth_date == dt.date(2019, 5, 5)
    assert passport.expiry == dt.date(2031, 5, 9)
    born_1930 = mrz.parse(line1, line2("300101", "310509"), TODAY)
    assert born_1930.birth_date == dt.date(1930, 1, 1)  # 2030 is in the future: the last century
    assert mrz.parse(line1, line2("300101", "990101"), TODAY).expiry == dt.date(1999, 1, 1)
    bad_date = mrz.parse(line1, line2("851323", "310509"), TODAY)
    assert bad_date.errors == ("mrz_birth",) and bad_date.birth_date is None
    wrong_check = mrz.parse(line1, line2("851123", "310509", birth_check="0"), TODAY)
    assert wrong_check.errors == ("mrz_birth",)  # the composite was computed over the wrong digit
    with pytest.raises(ValueError, match="44 characters"):
        mrz.parse(line1, "EH1234567", TODAY)
