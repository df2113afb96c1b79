"""factory-boy factories for stored rows; specs are built by the real validator."""

import factory

from definitions.models import Definition
from definitions.services import spec_digest
from definitions.validation import validate_definition


def saga_source(name: str, url: str = "http://svc.local/orders") -> dict:
    """A one-step saga (valid): POST ``url``."""
    return {"name": name, "kind": "saga", "steps": [{"id": "call", "request": {"method": "POST", "url": url}}]}


class DefinitionFactory(factory.django.DjangoModelFactory):
    """A stored definition version: DefinitionFactory(name="orders", version=2)."""

    class Meta:
        model = Definition

    name = factory.Sequence(lambda n: f"definition-{n}")
    version = 1
    source = factory.LazyAttribute(lambda o: saga_source(o.name))
    spec = factory.LazyAttribute(lambda o: validate_definition(o.source).spec)
    kind = factory.LazyAttribute(lambda o: o.spec["kind"])
    digest = factory.LazyAttribute(lambda o: spec_digest(o.spec))
    created_by = "token:factory"
