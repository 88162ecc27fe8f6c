"""The console's confirmation pages, as a test posts them: read the fields of
a page's confirming form (hidden ones, its one-time token, the values it was
given) and post them back, as a browser does when "Yes" is pressed."""

from __future__ import annotations

from html.parser import HTMLParser

CONFIRM_FORMS = ("confirm-form", "block-confirm", "regenerate-form", "bulk-confirm-form")


class _Fields(HTMLParser):
    def __init__(self, form_ids) -> None:
        super().__init__()
        self.form_ids, self.inside, self.found = form_ids, False, False
        self.fields: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") in self.form_ids:
            self.inside = self.found = True
        elif tag == "input" and self.inside and attrs.get("name"):
            self.fields.setdefault(attrs["name"], []).append(attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def confirm_fields(response, form_ids=CONFIRM_FORMS) -> dict:
    """The fields a confirmation page's form would post ({name: value or [values]})."""
    parser = _Fields(form_ids)
    parser.feed(response.content.decode())
    assert parser.found, f"no confirming form in the page ({response.status_code})"
    return {name: values[0] if len(values) == 1 else values for name, values in parser.fields.items()}


def confirm(client, url: str, data: dict | None = None, *, follow: bool = False, **changes):
    """Post `data` to an action (the license page's form), then press "Yes" on
    the confirmation it answers (with `changes` to its fields). The answer to
    the confirming POST."""
    page = client.post(url, data or {})
    assert page.status_code == 200, page.content.decode()[:3000]
    fields = {**confirm_fields(page), **changes}
    return client.post(url, fields, follow=follow)


def at_once(console, count: int, send) -> list:
    """`send(client)` from `count` clients sharing the console's session, all
    released together (tabs or double clicks in flight at the same moment,
    each on its own database connection); their answers, in arrival order."""
    import threading

    from django.conf import settings
    from django.db import connections
    from django.test import Client

    cookie = console.cookies[settings.SESSION_COOKIE_NAME].value
    start = threading.Barrier(count)
    answers = []

    def one():
        client = Client()
        client.cookies[settings.SESSION_COOKIE_NAME] = cookie
        try:
            start.wait()
            answers.append(send(client))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
