"""django-rest-passwordreset's command, under its own name (sic): tokens created at or before now - expiry hours."""
import datetime

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_rest_passwordreset.models import clear_expired, get_password_reset_token_expiry_time


class Command(BaseCommand):
    def handle(self, *args, **options):
        clear_expired(timezone.now() - datetime.timedelta(hours=get_password_reset_token_expiry_time()))
