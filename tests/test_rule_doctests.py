"""Every rule module's docstring holds a runnable before/after example, and it runs.

Like sqlglot's optimizer tests: the examples in the docs are tests, so they
cannot rot. The layout is checked too: one rule per module, the module
named after the one function it exports.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys

import pytest

import optimizer.rules as rules_package
from optimizer.rules import RULES

HELPERS = {"analysis"}  # shared analysis, not a rule
MODULES = [rule.__module__ for rule in RULES] + ["optimizer.rules.analysis", "optimizer.fixpoint"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_docstring_states_its_condition_and_shows_before_and_after(rule):
    module = sys.modules[rule.__module__]
    doc = module.__doc__ or ""
    assert "correctness condition" in doc.lower(), f"{module.__name__} must state its correctness condition"
    examples = doctest.DocTestParser().get_examples(doc)
    printed = [ex for ex in examples if "render_plan(" in ex.source and ex.want.strip()]
    applied = [ex for ex in printed if f"{rule.__name__}(" in ex.source]
    assert applied, f"{module.__name__}'s docstring must print the plan after {rule.__name__}"
    assert len(printed) > len(applied), f"{module.__name__}'s docstring must print the plan before the rule too"
    assert (rule.__doc__ or "").strip(), f"{rule.__name__} needs a docstring"


def test_one_rule_per_module_named_after_its_function():
    modules = {m.name for m in pkgutil.iter_modules(rules_package.__path__)} - HELPERS
    assert modules == {rule.__name__ for rule in RULES}
    for rule in RULES:
        assert rule.__module__ == f"optimizer.rules.{rule.__name__}"
