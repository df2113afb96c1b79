import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class DefinitionKind(models.TextChoices):
    SAGA = "saga", "Linear saga"
    GRAPH = "graph", "Node graph"


class Definition(models.Model):
    """One immutable version of a workflow definition.

    ``source`` is the JSON as the author sent it; ``spec`` is the normalized
    graph the engine runs (sagas become chains of task nodes, defaults are
    merged in). Executions pin a row, so a row is never edited: storing the
    same name again creates the next version. Inline definitions (started
    with ``spec`` instead of a name) are stored too, deduplicated by digest,
    so every execution can point at the exact graph it ran.
    """

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False,
        help_text="The id of the original Trama's API (/workflows/definitions/{id}); ours uses name and version.",
    )  # fmt: skip
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=DefinitionKind.choices)
    source = models.JSONField()
    spec = models.JSONField()
    digest = models.CharField(max_length=64, help_text="SHA-256 of the normalized spec.")
    is_inline = models.BooleanField(default=False)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], condition=Q(is_inline=False), name="definition_name_version_unique"
            ),
            models.UniqueConstraint(
                fields=["digest"], condition=Q(is_inline=True), name="inline_definition_digest_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" + (" (inline)" if self.is_inline else "")

    @property
    def node_count(self) -> int:
        return len(self.spec.get("nodes", {}))

    @property
    def editor_drawing(self) -> dict | None:
        """The source's ``editor`` block (direction, hand-placed nodes): how the pages draw the graph."""
        return self.source.get("editor") if isinstance(self.source, dict) else None
