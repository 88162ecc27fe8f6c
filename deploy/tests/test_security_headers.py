"""The content security policy: on HTML pages (dashboard, admin), not on JSON,
not on the exempt API docs page; report-only when asked."""

from __future__ import annotations

import pytest
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory

from core.middleware import ContentSecurityPolicyMiddleware

POLICY = "default-src 'self'; frame-ancestors 'none'"


def _middleware(settings, answer, **overrides):
    settings.CONTENT_SECURITY_POLICY = POLICY
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = False
    settings.CONTENT_SECURITY_POLICY_EXEMPT = [r"^api/docs/"]
    for name, value in overrides.items():
        setattr(settings, name, value)
    return ContentSecurityPolicyMiddleware(lambda request: answer)


def test_html_pages_carry_the_policy(settings):
    response = _middleware(settings, HttpResponse("<p>hi</p>"))(RequestFactory().get("/dashboard/"))
    assert response["Content-Security-Policy"] == POLICY


def test_json_answers_and_the_exempt_docs_page_do_not(settings):
    assert "Content-Security-Policy" not in _middleware(settings, JsonResponse({}))(
        RequestFactory().get("/api/v1/x")
    )
    docs = _middleware(settings, HttpResponse("<html>"))(RequestFactory().get("/api/docs/"))
    assert "Content-Security-Policy" not in docs


def test_report_only_sends_the_report_only_header_instead(settings):
    response = _middleware(settings, HttpResponse("<p>"), CONTENT_SECURITY_POLICY_REPORT_ONLY=True)(
        RequestFactory().get("/dashboard/")
    )
    assert response["Content-Security-Policy-Report-Only"] == POLICY
    assert "Content-Security-Policy" not in response


def test_a_view_that_sets_its_own_policy_keeps_it(settings):
    own = HttpResponse("<p>")
    own["Content-Security-Policy"] = "default-src 'none'"
    assert (
        _middleware(settings, own)(RequestFactory().get("/x"))["Content-Security-Policy"]
        == "default-src 'none'"
    )


@pytest.mark.django_db
def test_the_admin_login_page_is_served_with_the_sites_policy(client, settings):
    response = client.get(f"/{settings.ADMIN_URL}login/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
