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


def test_differentiable_args_are_the_float_arrays_passed_and_their_predicates():
    """An int64 index target and an absent argument have no gradient; ``differentiable_when``
    restricts an argument to the cases where the loss is differentiable in it."""
    import numpy as np

    from conformance.cases import Case

    spec = dataclasses.replace(SPECS["cross_entropy"],
                               differentiable=("input", "target", "weight"),
                               differentiable_when={"weight": lambda case: case.options["soft"]})
    x = np.zeros((2, 3))
    index = Case("float32", {"input": x, "target": np.array([0, 1]), "weight": None},
                 {"soft": False})
    weighted = Case("float32", {"input": x, "target": np.array([0, 1]), "weight": np.ones(3)},
                    {"soft": False})
    soft = Case("float32", {"input": x, "target": np.full((2, 3), 1 / 3), "weight": np.ones(3)},
                {"soft": True})
    assert spec.differentiable_args(index) == ("input",)
    assert spec.differentiable_args(weighted) == ("input",)
    assert spec.differentiable_args(soft) == ("input", "target", "weight")
