"""
Stand-in for django-rest-knox 5.0 (not in Debian): its AuthToken model as knox/models.py declares it,
app label "knox", so that the table is knox's own "knox_authtoken".
"""
from django.conf import settings
from django.db import models


class AuthToken(models.Model):
    digest = models.CharField(max_length=128, primary_key=True)
    token_key = models.CharField(max_length=25, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=False, blank=False, related_name="auth_token_set", on_delete=models.CASCADE
    )
    created = models.DateTimeField(auto_now_add=True)
    expiry = models.DateTimeField(null=True, blank=True)
