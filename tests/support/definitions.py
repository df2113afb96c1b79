"""Stored definitions for tests: one factory, and ``store`` for a normalized graph built with tests.support.specs.
``BRANCHING`` is a source to store: a branching graph the UI's tests draw and edit.

Tests about storing go through the real service (definitions.services.store_definition);
every other test makes its rows here.
"""

import factory

from definitions.models import Definition
from definitions.services import spec_digest
from definitions.validation import validate_definition


def saga_source(name: str, url: str = "http://svc.local/orders") -> dict:
    """A one-step saga (valid): POST ``url``."""
    return {"name": name, "kind": "saga", "steps": [{"id": "call", "request": {"method": "POST", "url": url}}]}


class DefinitionFactory(factory.django.DjangoModelFactory):
    """A stored definition version: DefinitionFactory(name="orders", version=2).

    From ``source`` (validated by the real validator), or from an already normalized ``spec``.
    """

    class Meta:
        model = Definition

    name = factory.Sequence(lambda n: f"definition-{n}")
    version = 1
    source = factory.LazyAttribute(lambda o: saga_source(o.name))
    spec = factory.LazyAttribute(lambda o: validate_definition(o.source).spec)
    kind = factory.LazyAttribute(lambda o: o.spec["kind"])
    digest = factory.LazyAttribute(lambda o: spec_digest(o.spec))
    created_by = "token:factory"


def store(nodes: dict, start: str, name: str = "t") -> Definition:
    """The next version of graph ``name``, its nodes stored as given (normalized, not validated)."""
    spec = {"name": name, "kind": "graph", "start": start, "nodes": nodes}
    version = Definition.objects.filter(name=name).count() + 1
    return DefinitionFactory(name=name, version=version, source=spec, spec=spec)


# The SPEC 2.2 checkout graph against hosts that do not exist: a graph to draw and edit, never to run.
BRANCHING = {
    "name": "checkout",
    "kind": "graph",
    "start": "reserve",
    "nodes": {
        "reserve": {"type": "task", "request": {"method": "POST", "url": "http://inventory.local/r"}, "next": "route",
                    "compensation": {"method": "DELETE", "url": "http://inventory.local/r/1"}},
        "route": {"type": "switch", "default": "card",
                  "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}]},
        "pix": {"type": "async_task", "request": {"method": "POST", "url": "http://pay.local/pix"}, "timeout_s": 900,
                "next": "ship", "on_timeout": "expired"},
        "card": {"type": "task", "request": {"method": "POST", "url": "http://pay.local/card"}, "next": "cool"},
        "cool": {"type": "sleep", "duration_s": 30, "next": "ship"},
        "expired": {"type": "fail", "error": {"message": "pix expired"}},
        "ship": {"type": "task", "request": {"method": "POST", "url": "http://ship.local/s"}, "next": "done"},
        "done": {"type": "succeed", "output": {"shipped": True}},
    },
}  # fmt: skip
