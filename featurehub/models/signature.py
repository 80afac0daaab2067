"""A model's signature: the feature service's features (names and types, in the service's
order) it takes, and the type of what it gives back."""

from __future__ import annotations

from featurehub.definitions.catalog import Catalog
from featurehub.registry.models import Signature, SignatureInput


def service_inputs(catalog: Catalog, service: str) -> list[SignatureInput]:
    """The features a service serves, in its order, with their featurehub types."""
    projections = catalog.resolve(catalog.feature_service(service))
    return [
        SignatureInput(field.name, field.dtype.name)
        for projection in projections
        for field in catalog.feature_fields(projection)
    ]


def input_differences(expected: Signature, current: list[SignatureInput]) -> list[str]:
    """How a service's features now differ from those a model was registered with."""
    before = {item.name: item.type for item in expected.inputs}
    now = {item.name: item.type for item in current}
    problems = [f"{name} is gone" for name in before if name not in now]
    problems += [f"{name} is new" for name in now if name not in before]
    problems += [
        f"{name} is {now[name]}, was {before[name]}"
        for name in before
        if name in now and now[name] != before[name]
    ]
    if not problems and [i.name for i in current] != expected.feature_names:
        problems.append("the features are in another order")
    return problems
