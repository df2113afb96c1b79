"""`manage.py trama_demo`: store the example definitions and print how to run each against its demo service."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from definitions.management.commands._definition_files import definition_files, import_files

# Each example: the demo service it calls (examples/<script>, its port) and an input to start it with.
DEMOS = {
    "order-flow": ("order_service.py", 8001, {"orderId": "A-1", "method": "pix", "amount": 42, "fail_shipping": False}),
    "order-saga": ("order_service.py", 8001, {"orderId": "B-1", "amount": 10}),
    "payment-authorization": ("finance_service.py", 8002, {"account": "ACC-1", "amount": 120, "fail_ledger": False}),
    "data-pipeline": (
        "pipeline_service.py",
        8003,
        {"source": "s3://raw/orders/2026-11-25", "rows": 1200, "table": "orders_daily", "fail_load": False},
    ),
}


class Command(BaseCommand):
    help = "Store the example definitions (examples/*.json) and print how to run the demo services and start them."

    def add_arguments(self, parser):
        parser.add_argument("--examples", default=str(settings.BASE_DIR / "examples"), help="The examples directory.")

    def handle(self, *args, examples: str, **options):
        directory = Path(examples)
        if not directory.is_dir():
            raise CommandError(f"no examples directory at {examples!r}")
        files = definition_files([examples])
        if not files:
            raise CommandError(f"no *.json definitions in {examples!r}")
        results = import_files(files, "cli:trama_demo", self.stdout.write)
        if any(r.outcome == "invalid" for r in results):
            raise CommandError("an example definition is invalid (see above)")
        self._print_how_to(directory, [r.definition.name for r in results])

    def _print_how_to(self, directory: Path, names: list[str]) -> None:
        self.stdout.write("\nRun the demo services (one terminal each), and Trama with loopback egress allowed:")
        for script, port in sorted({DEMOS[n][:2] for n in names if n in DEMOS}):
            self.stdout.write(f"  python3 {directory / script}        # http://127.0.0.1:{port}")
        self.stdout.write("  make run        # web + worker + timers; sets TRAMA_EGRESS_ALLOW=127.0.0.1,localhost")
        if not {"127.0.0.1", "localhost"} & set(settings.TRAMA_EGRESS_ALLOW):
            self.stdout.write(
                "  (TRAMA_EGRESS_ALLOW here lacks 127.0.0.1: calls to the demo services would be refused)"
            )
        self.stdout.write("\nThen start each example, from the shell or over HTTP:")
        for name in names:
            payload = json.dumps(DEMOS.get(name, (None, None, {}))[2])
            self.stdout.write(f"  echo '{payload}' | .venv/bin/python manage.py trama_run {name} --input -")
        self.stdout.write(
            '  curl -X POST $API/executions/ -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
            '-d \'{"definition": "<name>", "input": {...}}\''
        )
        self.stdout.write("Without a worker running, add --drive to trama_run. Async callbacks need the web server.")
