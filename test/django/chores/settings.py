"""
Settings of the test project: every app whose chore taskgate does, on the PostgreSQL database
named by DJANGO_DATABASE_URL. The chores' own settings come from the environment, so that one
project runs each upstream command with the settings a test gives it.
"""
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
# django-rest-knox and django-rest-passwordreset are not in Debian: stand-ins declare their
# models and migrations as upstream does (see standins/).
sys.path.insert(0, str(BASE_DIR / "standins"))

url = urlparse(os.environ["DJANGO_DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(url.path.lstrip("/")),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        # bench/pack.ts tells upstream's transactions from its own connections by this name.
        "OPTIONS": {"application_name": "upstream"},
    }
}

SECRET_KEY = "taskgate-test-project-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "chores.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "rest_framework_simplejwt.token_blacklist",
    "oauth2_provider",
    "axes",
    "simple_history",
    "reversion",
    "django_celery_results",
    "knox",
    "django_rest_passwordreset",
    "inventory",
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesBackend", "django.contrib.auth.backends.ModelBackend"]


def _number(name):
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return float(value) if "." in value else int(value)


OAUTH2_PROVIDER = {
    "REFRESH_TOKEN_EXPIRE_SECONDS": _number("OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS"),
    # One batch per rule: the test compares rows, not upstream's pace.
    "CLEAR_EXPIRED_TOKENS_BATCH_INTERVAL": 0,
}
AXES_COOLOFF_TIME = _number("AXES_COOLOFF_TIME")
CELERY_RESULT_EXPIRES = timedelta(seconds=_number("CELERY_RESULT_EXPIRES") or 86400)
DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME = _number("DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME") or 24
LOGGING = {"version": 1, "disable_existing_loggers": True}
