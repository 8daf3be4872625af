"""``copier update`` from the recorded version 0.5.0 keeps the maintainer's edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_update import update_keeps_user_edits


@pytest.mark.slow
@pytest.mark.long(minutes=5)
def test_update_from_0_5_0_keeps_user_edits(template_repo: Path, tmp_path: Path) -> None:
    update_keeps_user_edits("0.5.0", template_repo, tmp_path)
