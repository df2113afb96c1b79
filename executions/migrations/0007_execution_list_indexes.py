# The UI's executions list (graph_editor/listing.py): root executions newest first, and search in the input.

from django.db import migrations, models


def create_input_gin(apps, schema_editor):
    """``input @> {...}`` through a GIN index. PostgreSQL only: SQLite has no GIN (and the list searches it by key)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS execution_input ON executions_execution USING gin (input jsonb_path_ops)"
        )


def drop_input_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS execution_input")


class Migration(migrations.Migration):
    dependencies = [
        ("definitions", "0001_initial"),
        ("executions", "0006_operator_actions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("parent__isnull", True)),
                fields=["-created_at", "-id"],
                name="execution_root_created",
            ),
        ),
        migrations.RunPython(create_input_gin, drop_input_gin, elidable=False),
    ]
