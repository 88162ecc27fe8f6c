import json

from django.core.management.base import BaseCommand, CommandError

from accounts.services import login_unlock
from accounts.throttle import login_throttle_state
from core.errors import ServiceUnavailable


class Command(BaseCommand):
    help = (
        "Lift the sign-in throttle of an account (its failed sign-ins and any lock), or with --show "
        "only tell it. Works for an email with no account too. Prints one JSON object."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True, help="The account's email.")
        parser.add_argument("--show", action="store_true", help="Tell the throttle's state; change nothing.")

    def handle(self, *args, **options):
        email = options["email"].strip().lower()
        try:
            if options["show"]:
                state = login_throttle_state(email=email)
                result = {"email": email, "failures": state.failures, "locked_for": state.locked_for}
            else:
                result = {"email": email, "cleared_failures": login_unlock(email=email, via="command")}
        except ServiceUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(result))
