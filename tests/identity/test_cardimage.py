"""Finding a card's corners in a photo, straight on a table, rotated and in perspective."""

from __future__ import annotations

import numpy as np

from identity.cardimage import find_card
from identity.cardtext import check_digit

from . import synth
from .conftest import FACES, load
from .synth import on_table, rotated


def test_card_found_rotated_and_in_perspective() -> None:
    portrait = synth.portrait_crop(load(FACES / "faceonnx/nicole_kidman/nicole_1.jpg"))
    card = synth.render_card(synth.CardHolder("31011519851123002" + check_digit("31011519851123002"), portrait))
    for corners in (rotated(-12), [(300, 180), (1050, 240), (1120, 760), (220, 700)]):
        found = find_card(on_table(card, corners))
        assert found is not None
        assert np.abs(found - np.array(corners, np.float32)).max() < 12
