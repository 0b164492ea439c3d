"""``docs/errors.md`` shows the catalogue exactly, and every catalogue entry has its test."""

from __future__ import annotations

import re
from pathlib import Path

from tests.errors.catalogue import CASES, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_docs_table_is_the_catalogue():
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert markdown_table() in text, (
        "docs/errors.md is out of step with tests/errors/catalogue.py; paste the output of "
        "`python -c 'from tests.errors.catalogue import markdown_table; print(markdown_table())'`")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(CASES)  # no stale row left beside the table


def test_every_case_has_a_test_that_checks_it():
    source = (ROOT / "tests" / "errors" / "test_catalogue.py").read_text(encoding="utf-8")
    checked = set(re.findall(r'check\("([\w.-]+)"', source)) | set(re.findall(r'BY_ID\["([\w.-]+)"\]', source))
    parametrized = set(re.findall(r'\("([\w.-]+)", ', source))
    missing = [c.id for c in CASES if c.id not in checked | parametrized]
    assert not missing, f"catalogue entries without a test: {missing}"
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def _test_blocks(source: str) -> list[tuple[str, str]]:
    """``(decorators, body)`` of every top-level test function (decorators include parametrize lists)."""
    starts = [m.start() for m in re.finditer(r"^(?:@.*\n(?:[ \t].*\n)*)*def test_", source, flags=re.M)]
    blocks = []
    for k, start in enumerate(starts):
        text = source[start : starts[k + 1] if k + 1 < len(starts) else len(source)]
        head = text[: text.index("def test_")]
        blocks.append((head, text))
    return blocks


def test_slow_cases_are_marked_slow():
    source = (ROOT / "tests" / "errors" / "test_catalogue.py").read_text(encoding="utf-8")
    blocks = _test_blocks(source)
    for case in CASES:
        owners = [head for head, text in blocks if f'"{case.id}"' in text]
        assert owners, case.id
        assert all(("@pytest.mark.slow" in head) == case.slow for head in owners), case.id
