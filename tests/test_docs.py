"""docs/RELIABILITY.md names the test behind every promise: each named test file and test must exist,
so the table cannot outlive the tests it cites."""
import re

from tests.conftest import REPO


def _defined_tests() -> set[str]:
    names = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


def test_every_test_named_in_reliability_md_exists():
    text = (REPO / "docs" / "RELIABILITY.md").read_text()
    files = set(re.findall(r"`((?:tests/)?[\w/]*test_\w+\.py)", text))
    assert files, "no test files named"
    for name in files:
        hits = [REPO / name] if name.startswith("tests/") else list((REPO / "tests").rglob(name))
        assert any(p.is_file() for p in hits), f"docs/RELIABILITY.md names {name}, which does not exist"
    defined = _defined_tests()
    cited = set(re.findall(r"::(test_\w+)", text))
    assert cited, "no tests named"
    missing = sorted(cited - defined)
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"
