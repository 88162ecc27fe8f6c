"""The first operator (and any later one): staff without a tenant, who signs
in to the admin site. It is written on the operator database path, the only
one that may hold a user without a tenant (the app role's row-level security
refuses it), so it works on a production install with its three roles."""

import getpass
import json
import os
import sys

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from accounts.models import User
from tenants.scope import operator_scope

# The environment variable a script may hand the password in (a Job's secret).
PASSWORD_ENV = "OPERATOR_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create an operator (staff, no tenant) who signs in to the admin site, and print it as one "
        "JSON object. The password is read from --password-file, else from the OPERATOR_PASSWORD "
        "environment variable, else prompted for (twice)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--full-name", default="")
        parser.add_argument("--password-file", help="A file whose first line is the password.")

    def _password(self, options) -> str:
        if options.get("password_file"):
            try:
                with open(options["password_file"], encoding="utf-8") as handle:
                    return handle.readline().rstrip("\r\n")
            except OSError as exc:
                raise CommandError(f"--password-file cannot be read: {exc}") from exc
        if os.environ.get(PASSWORD_ENV):
            return os.environ[PASSWORD_ENV]
        if not sys.stdin.isatty():
            raise CommandError(
                f"No password: give --password-file or {PASSWORD_ENV}, or run it in a terminal."
            )
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return first

    def handle(self, *args, **options):
        email = User.objects.normalize_email(options["email"]).lower()
        if "@" not in email:
            raise CommandError("--email must be an email address.")
        password = self._password(options)
        if not password:
            raise CommandError("The password is empty.")
        try:
            validate_password(password, User(email=email, full_name=options["full_name"]))
        except ValidationError as exc:
            raise CommandError("The password is refused: " + " ".join(exc.messages)) from exc
        with operator_scope():
            if User.objects.filter(email=email).exists():
                raise CommandError(f"A user with the email {email} already exists.")
            try:
                with transaction.atomic(using=settings.OPERATOR_DATABASE):
                    user = User.objects.create_superuser(email, password, full_name=options["full_name"])
            except IntegrityError as exc:
                raise CommandError(f"cannot create the operator: {exc}") from exc
        self.stdout.write(
            json.dumps({"id": str(user.id), "email": user.email, "is_staff": True, "is_superuser": True})
        )
