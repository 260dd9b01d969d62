"""Label and field selectors as list/watch parse them."""

from __future__ import annotations

import pytest

from kaito.cluster import StatusError
from kaito.cluster._selectors import (
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "gpu": "4"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param("app=web", True, id="equals"),
        pytest.param("app==web", True, id="double-equals"),
        pytest.param("app!=web", False, id="not-equals"),
        pytest.param("missing!=x", True, id="not-equals-absent"),
        pytest.param("app in (web, api)", True, id="in"),
        pytest.param("app notin (web)", False, id="notin"),
        pytest.param("missing notin (web)", True, id="notin-absent"),
        pytest.param("tier", True, id="exists"),
        pytest.param("!tier", False, id="not-exists"),
        pytest.param("!missing", True, id="not-exists-absent"),
        pytest.param("app=web,tier=back", False, id="conjunction"),
        pytest.param("gpu>3,gpu<5", True, id="gt-lt"),
        pytest.param("", True, id="empty"),
    ],
)
def test_label_selector_operators(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("selector", ["app in web", "app=(x", "=x", "app=a b", "app in (a"])
def test_malformed_label_selectors_are_bad_requests(selector: str) -> None:
    with pytest.raises(StatusError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("selector", "field", "reason"),
    [
        pytest.param(
            "Example.COM/app=x", 'key: Invalid value: "Example.COM/app"', "prefix part", id="key"
        ),
        pytest.param(
            "app=" + "v" * 64, "values[0][app]: Invalid value:", "no more than 63", id="long"
        ),
        pytest.param(
            "app in (ok, -bad)", 'values[0][app]: Invalid value: "-bad"', "a valid label", id="in"
        ),
    ],
)
def test_label_selector_keys_and_values_use_the_label_syntax(
    selector: str, field: str, reason: str
) -> None:
    """``labels.Parse``: keys are qualified names, values label values, at upstream's paths."""
    with pytest.raises(StatusError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400
    message = caught.value.message
    assert message.startswith(f"unable to parse requirement: {field}")
    assert reason in message


def test_object_selectors_follow_matchlabels_and_expressions() -> None:
    selector = label_selector_from_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({"app": "web"})
    assert label_selector_from_object({}).matches({})
    assert not label_selector_from_object(None).matches(LABELS)


def test_field_selectors_name_only_known_fields() -> None:
    selector = parse_field_selector(
        "metadata.name=a,spec.nodeName!=n1", ["metadata.name", "spec.nodeName"], custom=False
    )
    values = {"metadata.name": "a", "spec.nodeName": "n2"}
    assert selector.matches(values.__getitem__)
    with pytest.raises(StatusError) as builtin:
        parse_field_selector("spec.foo=x", ["metadata.name"], custom=False)
    assert builtin.value.message == "field label not supported: spec.foo"
    with pytest.raises(StatusError) as custom:
        parse_field_selector("spec.foo=x", ["metadata.name", "metadata.namespace"], custom=True)
    assert (
        custom.value.message
        == '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
