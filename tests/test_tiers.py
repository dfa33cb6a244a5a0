"""The tier rule of tests/conftest.py, run on a throwaway test tree (pytester, in process)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.tier("unit")

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()

TESTS = '''
import pytest

pytestmark = pytest.mark.tier("unit")

@pytest.fixture
def data():  # stands in for the real-data fixture (only its name matters to the rule)
    return 1

def test_pure():
    pass

@pytest.mark.integration
def test_closer_mark_wins():
    pass

def test_needs_data_in_a_unit_module(data):
    pass
'''

UNMARKED = '''
import pytest

@pytest.fixture
def data():
    return 1

@pytest.fixture
def derived(data):
    return data

def test_plain():
    pass

def test_through_a_fixture(derived):
    pass

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.browser
def test_browser():
    pass

def add(a, b):
    """
    >>> add(1, 2)
    3
    """
    return a + b
'''


@pytest.fixture
def tree(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\naddopts = --doctest-modules -p no:cacheprovider\nmarkers =\n    unit\n    integration\n"
                     "    tier\n    slow\n    browser\n    postgres\n    gpu\n    vllm\n")
    pytester.makepyfile(test_marked=TESTS, test_unmarked=UNMARKED)
    return pytester


def _selected(pytester, expr: str) -> set[str]:
    res = pytester.runpytest("-m", expr, "--collect-only", "-q")
    return {line.split("::", 1)[1] for line in res.outlines if "::" in line}


def test_each_test_gets_exactly_one_tier(tree):
    unit, integration = _selected(tree, "unit"), _selected(tree, "integration")
    assert unit == {"test_pure", "test_needs_data_in_a_unit_module", "test_plain", "test_unmarked.add"}
    assert integration == {"test_closer_mark_wins", "test_through_a_fixture", "test_slow", "test_browser"}
    assert _selected(tree, "unit and integration") == set()


def test_a_unit_mark_on_a_test_that_needs_the_data_fails_with_the_reason(tree):
    res = tree.runpytest("-m", "unit")
    res.assert_outcomes(passed=3, errors=1)  # it fails at set-up, before its body runs
    res.stdout.fnmatch_lines(["*ERROR at setup of test_needs_data_in_a_unit_module*",
                              "marked unit (by module test_marked.py) but uses fixture 'data': "
                              "mark it @pytest.mark.integration*"])


MISPLACED = '''
import pytest

pytestmark = pytest.mark.unit

def test_in_a_module_marked_like_a_test():
    pass
'''


def test_a_tier_mark_on_a_module_is_refused_with_the_fix(tree):
    """``-m`` matches the marks of parents: a module marked ``unit`` would leak into ``-m unit``
    for its integration tests, so modules say ``tier('unit')``."""
    tree.makepyfile(test_misplaced=MISPLACED)
    res = tree.runpytest("-m", "unit", "test_misplaced.py")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*module test_misplaced.py is marked unit: mark modules and classes with "
                              "pytest.mark.tier('unit')*"])
