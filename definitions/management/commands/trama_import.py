"""`manage.py trama_import FILE|DIR...`: store definition files (e.g. from trama_export) as new versions."""

from django.core.management.base import BaseCommand, CommandError

from definitions.management.commands._definition_files import definition_files, import_files


class Command(BaseCommand):
    help = (
        "Store each definition file (a directory: its *.json files) as the next version of its name, "
        "through the same validation as the API. A file identical to the stored version is 'unchanged'."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="FILE|DIR")

    def handle(self, *args, paths: list[str], **options):
        files = definition_files(paths)
        if not files:
            raise CommandError(f"no *.json definition files in {', '.join(paths)}")
        results = import_files(files, "cli:trama_import", self.stdout.write)
        invalid = [r for r in results if r.outcome == "invalid"]
        counts = {o: sum(r.outcome == o for r in results) for o in ("stored", "unchanged", "invalid")}
        summary = ", ".join(f"{n} {o}" for o, n in counts.items())
        if invalid:
            raise CommandError(f"{len(invalid)} of {len(results)} file(s) invalid, nothing stored for them ({summary})")
        self.stdout.write(summary)
