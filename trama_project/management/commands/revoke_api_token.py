"""`manage.py revoke_api_token NAME|PREFIX`: cut off a token at once; the row stays for the record."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q, QuerySet
from django.utils import timezone

from trama_project.models import TOKEN_PREFIX, ApiToken


class Command(BaseCommand):
    help = (
        "Revoke API tokens by name or by prefix (as list_api_tokens shows it). "
        "Revoked tokens answer 401 from then on; they are kept, never deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument("which", help=f"A token name, or a token prefix (starts with '{TOKEN_PREFIX}').")
        parser.add_argument("--all", action="store_true", help="Revoke every active token with this name.")

    def handle(self, *args, which: str, all: bool = False, **options):
        which = which.strip()
        if not which:
            raise CommandError("give a token name or prefix")
        matching = _matching(which)
        if not matching.exists():
            raise CommandError(f"no API token has the name or prefix {which!r} (see manage.py list_api_tokens)")
        active = matching.filter(revoked_at__isnull=True)
        if not active.exists():
            self.stdout.write(f"already revoked: {_describe(matching)}")
            return
        if active.count() > 1 and not all:
            raise CommandError(
                f"{active.count()} active tokens match {which!r} ({_describe(active)}); "
                "give one prefix, or --all to revoke them all"
            )
        described = _describe(active)
        # Conditional on revoked_at still being NULL: a revocation time, once set, is never moved.
        count = active.update(revoked_at=timezone.now())
        self.stdout.write(f"revoked {count} token(s): {described}")


def _matching(which: str) -> QuerySet[ApiToken]:
    if which.startswith(TOKEN_PREFIX):
        # A prefix longer than the stored one (a whole token pasted) still finds its row.
        return ApiToken.objects.filter(Q(prefix__startswith=which) | Q(prefix=which[: len(TOKEN_PREFIX) + 6]))
    return ApiToken.objects.filter(name=which)


def _describe(tokens: QuerySet[ApiToken]) -> str:
    return ", ".join(f"{t.name} ({t.prefix}…)" for t in tokens.order_by("created_at"))
