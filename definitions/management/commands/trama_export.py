"""`manage.py trama_export [NAME...] --dir DIR`: stored definitions to files, as their authors wrote them."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from definitions.management.commands._definition_files import write_source
from definitions.models import Definition
from definitions.services import definition_versions, latest_definitions, stored_definitions


class Command(BaseCommand):
    help = (
        "Write each definition's latest version (every version with --all-versions) as <name>.json "
        "(<name>.v<N>.json) into --dir. trama_import reads them back."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="Definitions to export (default: all).")
        parser.add_argument("--dir", required=True, help="Directory to write into (created if missing).")
        parser.add_argument("--all-versions", action="store_true", help="Every version, as <name>.v<N>.json.")

    def handle(self, *args, names: list[str], dir: str, all_versions: bool, **options):
        selected = _selected(names, all_versions)
        if not selected:
            raise CommandError("nothing to export: no definition is stored yet")
        directory = Path(dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            paths = [write_source(d, directory, all_versions) for d in selected]
        except OSError as exc:
            raise CommandError(f"cannot write into {dir!r}: {exc}")
        for definition, path in zip(selected, paths, strict=True):
            self.stdout.write(f"wrote {path} ({definition.name} v{definition.version})")
        self.stdout.write(f"exported {len(paths)} definition file(s) to {directory}")


def _selected(names: list[str], all_versions: bool) -> list[Definition]:
    """The definitions to write, by name and version; CommandError naming every unknown NAME."""
    unknown = [name for name in names if not definition_versions(name).exists()]
    if unknown:
        raise CommandError(f"unknown definition(s): {', '.join(unknown)} (see GET /api/v1/definitions/)")
    query = stored_definitions() if all_versions else latest_definitions()
    if names:
        query = query.filter(name__in=names)
    return list(query.order_by("name", "version"))
