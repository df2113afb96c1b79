"""`manage.py list_api_tokens`: who holds API access, without ever showing a token."""

import json

from django.core.management.base import BaseCommand

from trama_project.management.commands._cli import table, when
from trama_project.models import ApiToken


class Command(BaseCommand):
    help = "List API tokens: name, prefix, created, revoked. Tokens themselves are never stored or shown."

    def add_arguments(self, parser):
        parser.add_argument("--active", action="store_true", help="Only tokens that are not revoked.")
        parser.add_argument("--json", action="store_true", help="One JSON list instead of a table.")

    def handle(self, *args, active: bool = False, json: bool = False, **options):
        tokens = ApiToken.objects.active() if active else ApiToken.objects.all()
        rows = [_row(token) for token in tokens.order_by("created_at")]
        if json:
            self.stdout.write(_json_dump(rows))
        elif not rows:
            self.stdout.write("no API tokens (create one with: manage.py create_api_token NAME)")
        else:
            self.stdout.write(table([list(r.values()) for r in rows], ["NAME", "PREFIX", "CREATED", "REVOKED"]))


def _row(token: ApiToken) -> dict:
    # Only the public prefix identifies a token here: the hash is not shown either.
    return {
        "name": token.name,
        "prefix": token.prefix,
        "created": when(token.created_at),
        "revoked": when(token.revoked_at),
    }


def _json_dump(rows: list[dict]) -> str:
    for row in rows:
        row["revoked"] = None if row["revoked"] == "-" else row["revoked"]
    return json.dumps(rows, indent=2)
