"""
Stand-in for django-rest-passwordreset 1.6 (not in Debian): its ResetPasswordToken model as
django_rest_passwordreset/models.py declares it, and its cleanup, clear_expired().
"""
from django.conf import settings
from django.db import models


class ResetPasswordToken(models.Model):
    class Meta:
        indexes = [models.Index(fields=["created_at"], name="drpr_token_created_at_idx")]

    id = models.AutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="password_reset_tokens", on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    key = models.CharField(max_length=64, db_index=True, unique=True)
    ip_address = models.GenericIPAddressField(default="", blank=True, null=True)
    user_agent = models.CharField(max_length=512, default="", blank=True)


def get_password_reset_token_expiry_time():
    return getattr(settings, "DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME", 24)


def clear_expired(expiry_time):
    ResetPasswordToken.objects.filter(created_at__lte=expiry_time).delete()
