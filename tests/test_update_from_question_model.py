"""``copier update`` from the recorded version question-model keeps the maintainer's edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_update import update_keeps_user_edits


@pytest.mark.slow
@pytest.mark.long(minutes=5)
def test_update_from_question_model_keeps_user_edits(template_repo: Path, tmp_path: Path) -> None:
    update_keeps_user_edits("question-model", template_repo, tmp_path)
