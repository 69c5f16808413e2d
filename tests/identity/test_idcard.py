from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from identity import mrz
from identity.face import FaceEngine
from identity.idcard import (
    DOCUMENTS,
    PASSPORT,
    RESIDENT_ID,
    DocumentType,
    IdCardReader,
    OcrLine,
    check_digit,
    read_passport,
)
from identity.models import ModelRegistry

from . import synth
from .conftest import FACES, load
from .synth import on_table, render_back, rotated

TODAY = dt.date(2025, 6, 1)
NUMBER = "31011519851123002" + check_digit("31011519851123002")


@pytest.fixture(scope="module")
def reader(models_dir: Path) -> Iterator[IdCardReader]:
    engine = FaceEngine(ModelRegistry(models_dir))
    yield IdCardReader(engine)
    engine.close()


def render_card(number: str = NUMBER) -> np.ndarray:
    """王小梅's front side with a real portrait (nicole_1)."""
    portrait = synth.portrait_crop(load(FACES / "faceonnx/nicole_kidman/nicole_1.jpg"))
    return synth.render_card(synth.CardHolder(number, portrait))


@pytest.mark.parametrize("path", sorted((FACES / "ocr").glob("*.*")), ids=lambda p: p.name)
def test_shared_ocr_images_number_read_then_rejected(reader: IdCardReader, path: Path) -> None:
    result = reader.read_sync(path.read_bytes(), TODAY)
    assert result.fields["number"] == "110101199003071234"
    assert result.fields["name"] == "张三丰" and result.fields["birth_date"] == "1990-03-07"
    assert result.fields["sex"] == "男" and result.fields["ethnicity"] == "汉"
    assert result.errors == ("check_digit",) and not result.number_valid
    assert check_digit("11010119900307123") == "3"


def test_synthetic_card_straight(reader: IdCardReader) -> None:
    photo = on_table(render_card(), rotated(0))
    result = reader.read_sync(photo, TODAY)
    assert result.quality.found and result.quality.issues == ()
    assert result.fields["number"] == NUMBER and result.number_valid and result.errors == ()
    assert result.fields["name"] == "王小梅" and result.fields["sex"] == "女"
    assert result.fields["birth_date"] == "1985-11-23" and result.age == 39
    assert result.fields["address"].startswith("上海市浦东新区世纪大道")
    assert result.portrait is not None and reader.face_engine is not None
    match = reader.face_engine.verify_sync(load(FACES / "faceonnx/nicole_kidman/nicole_3.jpg"), result.portrait)
    assert match.score >= match.threshold


def test_synthetic_card_rotated_and_in_perspective(reader: IdCardReader) -> None:
    for corners in (rotated(-12), [(300, 180), (1050, 240), (1120, 760), (220, 700)]):
        result = reader.read_sync(on_table(render_card(), corners), TODAY)
        assert result.fields.get("number") == NUMBER and result.number_valid, result.fields


def test_glare_and_framing_give_guidance(reader: IdCardReader) -> None:
    photo = on_table(render_card(), rotated(0))
    cv2.circle(photo, (520, 420), 70, (255, 255, 255), -1)
    result = reader.read_sync(photo, TODAY)
    assert "glare" in result.quality.issues
    assert result.to_json()["quality"]["issues"][0]["zh"]
    cut = on_table(render_card(), rotated(0, centre=(400, 480), width=900))
    assert "not_in_frame" in reader.read_sync(cut, TODAY).quality.issues
    tiny = on_table(render_card(), rotated(0, width=330))
    assert "low_resolution" in reader.read_sync(tiny, TODAY).quality.issues


def test_blurred_card(reader: IdCardReader) -> None:
    photo = cv2.GaussianBlur(on_table(render_card(), rotated(0)), (0, 0), 5)
    assert "blurred" in reader.read_sync(photo, TODAY).quality.issues


def test_back_side_expiry(reader: IdCardReader) -> None:
    result = reader.read_sync(on_table(render_back(), rotated(0)), TODAY)
    assert result.side == "back" and result.fields["authority"] == "上海市公安局浦东分局"
    assert result.fields["valid_until"] == "2025-03-01" and result.errors == ("expired",)


@pytest.fixture(scope="module")
def passport_page() -> tuple[synth.PassportHolder, np.ndarray]:
    """王小梅's passport data page (portrait nicole_1), zone check digits from identity.mrz."""
    holder = synth.PassportHolder(synth.portrait_crop(load(FACES / "faceonnx/nicole_kidman/nicole_1.jpg")))
    return holder, synth.render_passport(holder, synth.passport_zone(holder, check=mrz.check_digit))


@pytest.mark.parametrize("angle", [8, 185], ids=["tilted", "upside_down"])
def test_passport_data_page_read_from_its_zone(
    reader: IdCardReader, passport_page: tuple[synth.PassportHolder, np.ndarray], angle: float
) -> None:
    holder, page = passport_page
    photo = on_table(page, rotated(angle, width=1000, ratio=PASSPORT.width_mm / PASSPORT.height_mm))
    result = reader.read_sync(photo, TODAY)
    assert (result.document, result.side) == ("passport", "data_page"), [ln.text for ln in result.lines]
    assert result.errors == () and result.number_valid, result.errors
    fields = result.fields
    assert (fields["number"], fields["surname"], fields["given_names"]) == (
        holder.number, holder.surname, holder.given_names
    ) == ("EH1234567", "WANG", "XIAOMEI")
    assert (fields["birth_date"], fields["valid_until"], fields["sex"]) == ("1985-11-23", "2031-05-09", "F")
    assert fields["nationality"] == fields["issuing_state"] == "CHN" and result.age == 39
    assert result.to_json()["document"] == "passport" and result.quality.issues == ()
    assert result.raises is None and result.to_json()["raises"] is None  # read, but declared to prove nothing
    # The portrait, cut from the page rectified to its own ID-3 proportions, is the holder's face.
    assert result.portrait is not None and reader.face_engine is not None
    match = reader.face_engine.verify_sync(load(FACES / "faceonnx/nicole_kidman/nicole_2.jpg"), result.portrait)
    assert match.decision == "match", match.score


def zone_lines(*texts: str) -> list[OcrLine]:
    """OCR lines one under the other."""
    return [OcrLine(t, ((0.0, 40.0 * i), (900.0, 40.0 * i), (900.0, 40.0 * i + 30), (0.0, 40.0 * i + 30)), 0.99)
            for i, t in enumerate(texts)]


def test_expired_passport_is_not_valid() -> None:
    holder = synth.PassportHolder(np.zeros((1, 1, 3), np.uint8), expiry=dt.date(2024, 1, 31))
    reading = read_passport(zone_lines(*synth.passport_zone(holder, check=mrz.check_digit)), TODAY)
    assert reading is not None and reading.side == "data_page" and reading.errors == ("expired",)
    assert read_passport(zone_lines("姓名王小梅", "公民身份号码" + NUMBER), TODAY) is None


def test_ocr_runs_on_the_pinned_files_with_spinning_off(reader: IdCardReader) -> None:
    ocr = reader.ocr_engine()
    for infer in (ocr.text_det.infer, ocr.text_cls.infer, ocr.text_rec.session):
        options = infer.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == reader.threads


def test_a_document_type_proves_only_what_it_declares() -> None:
    """A new type whose side shows a photo proves nothing until it says what it may raise."""
    assert RESIDENT_ID.raises == 3 and PASSPORT.raises is None
    assert DocumentType("residence_permit", 85.6, 54.0, lambda lines, today: None).raises is None
    assert {d.name: d.raises for d in DOCUMENTS} == {"passport": None, "resident_id": 3}
