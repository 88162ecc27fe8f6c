"""Password reset from the dashboard (issue 15, email): "Forgot your
password?" on the sign-in page; a page that asks for the email and says the
same whether or not it has an account; the emailed link opens the page that
sets the new password (the token moves from its address into the session);
the same services as the API, so the same limits (per address, and a bad
token counts as a failed sign-in of the account)."""

from __future__ import annotations

import random
import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from accounts.tests.factories import TEST_PASSWORD
from audit.models import AuditLog
from coditect.personas import api_client, tenant_admin
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

ASK = "/dashboard/password/reset/"
SET = "/dashboard/password/reset/confirm/"
NEW = "a-brand-new-passphrase-42"
RESET_LINK = re.compile(r"https?://\S+(/dashboard/password/reset/confirm/\?\S+)")


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def acme(committed_db, eager_tasks):
    mail.outbox = []
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def admin(acme):
    return tenant_admin(acme).user


@pytest.fixture
def address():
    """An address of the test's own, so no other test's count reaches it."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def text(response) -> str:
    return response.content.decode()


def ask(client, email, **extra):
    return client.post(ASK, {"email": email}, follow=True, **extra)


def emailed_link(message) -> str:
    [path] = set(RESET_LINK.findall(message.body))
    [(html, _)] = message.alternatives
    assert path.replace("&", "&amp;") in html
    return path


def audit(tenant, action):
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


def test_the_sign_in_page_links_to_the_reset_page(acme):
    page = Client().get("/dashboard/login/")
    assert f'href="{ASK}"' in text(page) and "Forgot your password?" in text(page)
    asked = Client().get(ASK)
    assert asked.status_code == 200 and 'name="email"' in text(asked)


def test_the_link_sets_a_new_password_once_and_ends_the_other_sign_ins(acme, admin):
    api = api_client()
    tokens = api.post("/api/v1/auth/login", {"email": admin.email, "password": TEST_PASSWORD}, format="json")
    elsewhere = api_client(token=tokens.json()["access_token"])
    browser = Client()

    answer = ask(browser, admin.email)

    assert answer.status_code == 200 and "If that address has an account here" in text(answer)
    [message] = mail.outbox
    assert message.to == [admin.email] and "Acme" in message.body
    link = emailed_link(message)
    assert "/api/v1/" not in message.body  # a link to open, not a request to type
    opened = browser.get(link)
    # The token leaves the address at once: the form's page is the bare one.
    assert opened.status_code == 302 and opened["Location"] == SET
    form = browser.get(SET)
    assert form.status_code == 200 and 'name="new_password"' in text(form)
    token = re.search(r"token=([^&\s]+)", link).group(1)
    assert token not in text(form)

    done = browser.post(SET, {"new_password": NEW, "new_password_again": NEW}, follow=True)

    assert done.redirect_chain[-1] == ("/dashboard/login/", 302)
    assert "Your new password is set" in text(done)
    assert elsewhere.get("/api/v1/auth/me").status_code == 401
    signed_in = browser.post("/dashboard/login/", {"email": admin.email, "password": NEW})
    assert signed_in.status_code == 302
    assert len(audit(acme, "auth.password_reset")) == 1
    # The same link again: its page says so and shows no form.
    again = Client()
    shown = again.get(link, follow=True)
    assert shown.status_code == 400 and "This link has expired or has been used" in text(shown)
    assert 'name="new_password"' not in text(shown) and 'href="/dashboard/password/reset/"' in text(shown)
    # A submit anyway (the link kept in another session): refused, and the password stays the new one.
    again = Client()
    again.get(link)
    refused = again.post(
        SET, {"new_password": "yet-another-pass-9", "new_password_again": "yet-another-pass-9"}
    )
    assert refused.status_code == 401 and "This link has expired or has been used" in text(refused)
    assert (
        api.post("/api/v1/auth/login", {"email": admin.email, "password": NEW}, format="json").status_code
        == 200
    )


def test_the_request_page_says_the_same_whether_or_not_the_address_has_an_account(acme, admin):
    answers = [ask(Client(), email) for email in (admin.email, "nobody@nowhere.test")]

    assert [a.status_code for a in answers] == [200, 200]
    said = [re.search(r'<ul class="messages">.*?</ul>', text(a), re.S).group(0) for a in answers]
    assert said[0] == said[1] and "If that address has an account here" in said[0]
    assert [m.to for m in mail.outbox] == [[admin.email]]


@pytest.mark.parametrize("email", ["", "not-an-address", "a\x00@example.test"])
def test_a_bad_address_is_refused_and_nothing_is_sent(acme, email):
    refused = Client().post(ASK, {"email": email})
    assert refused.status_code == 400 and "Give your email address" in text(refused)
    assert mail.outbox == []


def test_a_refused_new_password_shows_the_form_again_and_keeps_the_link(acme, admin):
    browser = Client()
    ask(browser, admin.email)
    browser.get(emailed_link(mail.outbox[0]))

    differ = browser.post(SET, {"new_password": NEW, "new_password_again": NEW + "x"})
    short = browser.post(SET, {"new_password": "short", "new_password_again": "short"})

    assert differ.status_code == 400 and "The two passwords differ" in text(differ)
    assert short.status_code == 400 and 'name="new_password"' in text(short)
    assert audit(acme, "auth.password_reset") == []
    done = browser.post(SET, {"new_password": NEW, "new_password_again": NEW})
    assert done.status_code == 302


def test_the_set_page_without_a_link_or_with_a_forged_one_refuses(acme, admin):
    assert Client().get(SET).status_code == 400
    forged = Client()
    forged.get(SET, {"uid": str(admin.pk), "token": "abc-def"})
    refused = forged.post(SET, {"new_password": NEW, "new_password_again": NEW})
    assert refused.status_code == 401 and "This link has expired or has been used" in text(refused)
    assert audit(acme, "auth.password_reset") == []
    assert [r.details["reason"] for r in audit(acme, "auth.login_failed")] == ["bad_reset_token"]


def test_bad_tokens_count_as_failed_sign_ins_and_are_throttled(acme, admin, settings):
    settings.LOGIN_FAILURES_BEFORE_THROTTLE = 2
    answers = []
    for _ in range(3):
        browser = Client()
        browser.get(SET, {"uid": str(admin.pk), "token": "abc-def"})
        answers.append(browser.post(SET, {"new_password": NEW, "new_password_again": NEW}))

    assert [a.status_code for a in answers] == [401, 401, 429]
    assert "try again in" in text(answers[2]) and int(answers[2]["Retry-After"]) > 0
    # The same account lock as the API's.
    locked = api_client().post(
        "/api/v1/auth/login", {"email": admin.email, "password": TEST_PASSWORD}, format="json"
    )
    assert locked.status_code == 429


def test_the_request_page_is_counted_per_address_as_the_api_is(acme, settings, address):
    settings.RATE_LIMIT_BACKEND = "database"
    settings.RATE_LIMIT_PER_IP = 2
    browser = Client(REMOTE_ADDR=address)
    assert ask(browser, "a@example.test").status_code == 200  # the POST and its redirect's GET
    refused = browser.post(ASK, {"email": "b@example.test"}, HTTP_ACCEPT="text/html")
    assert refused.status_code == 429 and "Retry-After" in refused
    assert [m.to for m in mail.outbox] == []
    assert urlsplit(ASK).path == ASK


def test_a_forged_or_expired_link_shows_no_form_and_counts_as_a_failed_sign_in(acme, admin, settings):
    forged = Client().get(SET, {"uid": str(admin.pk), "token": "abc-def"}, follow=True)

    assert forged.status_code == 400 and "This link has expired or has been used" in text(forged)
    assert 'name="new_password"' not in text(forged)
    assert [r.details["reason"] for r in audit(acme, "auth.login_failed")] == ["bad_reset_token"]

    browser = Client()
    ask(browser, admin.email)
    link = emailed_link(mail.outbox[0])
    settings.PASSWORD_RESET_TIMEOUT = -1  # the emailed token is now past its time
    expired = browser.get(link, follow=True)
    assert expired.status_code == 400 and 'name="new_password"' not in text(expired)
    # The session forgot it: a submit has no link to use either.
    assert browser.post(SET, {"new_password": NEW, "new_password_again": NEW}).status_code == 400
    assert audit(acme, "auth.password_reset") == []


def test_opening_a_good_link_twice_still_shows_the_form_and_changes_nothing(acme, admin):
    browser = Client()
    ask(browser, admin.email)
    link = emailed_link(mail.outbox[0])

    pages = [browser.get(link, follow=True) for _ in range(2)]

    assert [p.status_code for p in pages] == [200, 200]
    assert all('name="new_password"' in text(p) for p in pages)
    assert audit(acme, "auth.login_failed") == [] and audit(acme, "auth.password_reset") == []


def test_a_locked_account_s_link_page_is_429_with_no_form(acme, admin, settings):
    settings.LOGIN_FAILURES_BEFORE_THROTTLE = 1
    Client().get(SET, {"uid": str(admin.pk), "token": "abc-def"}, follow=True)
    browser = Client()
    ask(browser, admin.email)

    locked = browser.get(emailed_link(mail.outbox[0]), follow=True)

    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert 'name="new_password"' not in text(locked)
