"""IAM wildcards in the policy simulation: the regular-expression meaning, in time linear in each side."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rcforest.aws.simulation import wildcard_match


def _reference(pattern, value, ignore_case):
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(body, value, re.IGNORECASE if ignore_case else 0) is not None


@settings(max_examples=500, deadline=None)
@given(st.text("aB*?:", max_size=10), st.text("aAbB:", max_size=12), st.booleans())
def test_a_wildcard_matches_as_the_regular_expression_does(pattern, value, ignore_case):
    assert wildcard_match(pattern, value, ignore_case) == _reference(pattern, value, ignore_case)


def test_a_hostile_pattern_is_decided_without_backtracking():
    # As a regular expression this pattern backtracks for far longer than any test's timeout.
    assert not wildcard_match("*a" * 200 + "b", "a" * 5000, ignore_case=True)
    assert wildcard_match("sagemaker:*", "SageMaker:CreateTrainingJob", ignore_case=True)
    assert not wildcard_match("sagemaker:*", "SageMaker:CreateTrainingJob", ignore_case=False)
