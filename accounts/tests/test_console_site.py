"""The console's admin site: its own titles, and no Django group pages (the
console grants nothing by group: operators are staff without a tenant)."""

from django.contrib import admin
from django.contrib.auth.models import Group

from accounts.models import User


def test_the_site_is_titled_coditect_console():
    assert (admin.site.site_header, admin.site.site_title, admin.site.index_title) == (
        "CODITECT console",
    ) * 3


def test_groups_are_not_in_the_console():
    assert not admin.site.is_registered(Group)
    user_admin = admin.site.get_model_admin(User)
    assert all("groups" not in options["fields"] for _, options in user_admin.fieldsets)
