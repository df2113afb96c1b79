"""Definition.public_id: the UUID the original Trama's API names a stored definition by.

Added in three steps so every existing row gets its own UUID (a field default is
evaluated once for an AddField, which would give every row the same value).
"""

import uuid

from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    Definition = apps.get_model("definitions", "Definition")
    for definition in Definition.objects.filter(public_id__isnull=True).only("pk").iterator():
        Definition.objects.filter(pk=definition.pk).update(public_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("definitions", "0001_initial")]

    operations = [
        migrations.AddField(model_name="definition", name="public_id", field=models.UUIDField(null=True, editable=False)),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="definition",
            name="public_id",
            field=models.UUIDField(
                default=uuid.uuid4,
                editable=False,
                help_text="The id of the original Trama's API (/workflows/definitions/{id}); ours uses name and version.",
                unique=True,
            ),
        ),
    ]
