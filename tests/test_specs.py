"""Every Spec is complete, and an incomplete one fails loudly, naming what to add and where."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.specs import FAMILIES, SPECS, SpecError, validate


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_is_complete(name):
    validate(SPECS[name])
    assert SPECS[name].family in FAMILIES


@pytest.mark.parametrize("field, value", [("magnitude", None), ("reference_grad", None),
                                          ("variants", ()), ("family", "nowhere")])
def test_an_incomplete_spec_names_what_to_add(field, value):
    spec = dataclasses.replace(SPECS["cross_entropy"], **{field: value})
    with pytest.raises(SpecError) as error:
        validate(spec)
    message = str(error.value)
    assert "'cross_entropy'" in message and (field in message or value in message), message
