"""The resident ID number check (GB 11643) and the fields read from OCR lines, without OCR."""

from __future__ import annotations

import datetime as dt

from identity.cardtext import OcrLine, check_digit, parse_fields, validate_number

TODAY = dt.date(2025, 6, 1)
NUMBER = "31011519851123002" + check_digit("31011519851123002")


def test_number_validation() -> None:
    ok = validate_number(NUMBER, TODAY)
    assert ok.valid and ok.birth_date == dt.date(1985, 11, 23) and ok.sex == "女" and ok.age == 39
    assert validate_number("11010119900307123X", TODAY).errors == ("check_digit",)
    bad_region = "99010119900307123"
    assert validate_number(bad_region + check_digit(bad_region), TODAY).errors == ("region",)
    bad_date = "11010119901307123"
    assert validate_number(bad_date + check_digit(bad_date), TODAY).errors == ("birth_date",)
    assert validate_number("1234", TODAY).errors == ("number_format",)
    assert validate_number("11010520000229001" + check_digit("11010520000229001"), TODAY).age == 25


def test_parse_back_side_and_split_labels() -> None:
    box = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))

    def line(text: str, top: float) -> OcrLine:
        return OcrLine(text, tuple((x * 100, y * 10 + top) for x, y in box), 0.99)

    back = parse_fields([line("签发机关 北京市公安局东城分局", 0), line("有效期限 2010.01.01-长期", 40)])
    assert back == {"authority": "北京市公安局东城分局", "valid_from": "2010-01-01", "valid_until": "long-term"}
    front = parse_fields([line("姓名", 0), line("李四", 40), line("住址 广东省深圳市", 80), line("南山区1号", 120)])
    assert front["name"] == "李四" and front["address"] == "广东省深圳市南山区1号"
