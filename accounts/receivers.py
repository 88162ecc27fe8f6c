"""Sign-ins end when what they stood on changes, whichever door changed it: a
password set anew (the API, the admin's "change password" form, the
dashboard, `manage.py changepassword`), a user or a tenant deactivated.
Connected in accounts.apps."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import tenant_sign_ins_end, user_sign_ins_end
from tenants.models import Tenant


@receiver(post_save, sender=User, dispatch_uid="accounts.receivers.user_saved")
def user_saved_ends_sign_ins(*, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    if created or raw or instance.tenant_id is None:
        return
    # Django keeps a password just set (set_password) until the save after it;
    # a hash upgraded at sign-in (check_password) is the same password and
    # does not count.
    if getattr(instance, "_password", None) is not None:
        user_sign_ins_end(user=instance, reason="password_changed")
    elif not instance.is_active:
        user_sign_ins_end(user=instance, reason="user_deactivated")


@receiver(post_save, sender=Tenant, dispatch_uid="accounts.receivers.tenant_saved")
def tenant_saved_ends_sign_ins(*, instance: Tenant, created: bool, raw: bool = False, **kwargs) -> None:
    if not (created or raw or instance.is_active):
        tenant_sign_ins_end(tenant=instance, reason="tenant_deactivated")
