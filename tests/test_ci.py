"""CI's script names test files by path: a move of a test file must not leave CI pointing at nothing
(a moved tests/test_glsl.py once failed CI with 'file or directory not found' after the suite passed)."""

import re
import shlex

from espcn_lab.paths import REPO_ROOT


def _pytest_paths(script: str) -> list[str]:
    paths = []
    for line in script.splitlines():
        line = line.split("#", 1)[0].strip()
        if "pytest" not in line:
            continue
        paths += [w for w in shlex.split(line) if re.match(r"tests/", w)]
    return paths


def test_every_test_path_ci_names_exists():
    script = (REPO_ROOT / ".ci" / "run").read_text()
    paths = _pytest_paths(script)
    assert paths, "CI's script names no test file; the mpv render tests would not run"
    missing = [p for p in paths if not (REPO_ROOT / p.split("::")[0]).exists()]
    assert not missing, f"CI runs test paths that do not exist: {missing}"


def test_the_path_finder_sees_a_missing_file():
    assert _pytest_paths("python -m pytest -q -m slow tests/nowhere.py\n") == ["tests/nowhere.py"]
    assert _pytest_paths("# python -m pytest tests/commented.py\n") == []
