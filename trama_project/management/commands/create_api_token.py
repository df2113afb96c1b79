from django.core.management.base import BaseCommand, CommandError

from trama_project.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token and print it (only the token, on stdout). It is not shown again."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what the token is for, e.g. 'billing-service'.")

    def handle(self, *args, name: str, **options):
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters.")
        _, raw = ApiToken.mint(name)
        self.stdout.write(raw)
