#!/usr/bin/env python3
"""
Runs one upstream chore with Django's clock frozen at the instant given, so that taskgate's task,
given the same instant, can be compared with it row for row:

    python3 frozen.py 2031-03-04T05:06:07.890Z cleartokens
    python3 frozen.py 2031-03-04T05:06:07.890Z deleterevisions --days 30 --keep 2

A manage.py command by name, or one of the chores upstream runs without a command:
`axes-expire-attempts` (what axes runs on each login attempt), `celery-backend-cleanup` (Celery's
celery.backend_cleanup with the django-db backend) and `knox-expired` (what knox deletes when a
user authenticates: every token whose expiry has passed).
"""
import os
import sys
from datetime import datetime, timezone as dt_timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chores.settings")

FROZEN = datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).astimezone(dt_timezone.utc)
CHORE, ARGS = sys.argv[2], sys.argv[3:]

from django.utils import timezone  # noqa: E402

ORIGINAL = {"now": timezone.now}


def frozen_now():
    return FROZEN


timezone.now = frozen_now

import django  # noqa: E402

django.setup()

import rest_framework_simplejwt.utils as jwt_utils  # noqa: E402

ORIGINAL["aware_utcnow"] = jwt_utils.aware_utcnow


def freeze_imported_names():
    """Modules that imported `now` (or simplejwt's `aware_utcnow`) by name keep their own reference."""
    for module in list(sys.modules.values()):
        for name, original in ORIGINAL.items():
            if getattr(module, name, None) is original:
                setattr(module, name, frozen_now)


def run():
    if CHORE == "axes-expire-attempts":
        from axes.attempts import clean_expired_user_attempts

        freeze_imported_names()
        clean_expired_user_attempts()
    elif CHORE == "celery-backend-cleanup":
        from celery import Celery
        from django.conf import settings

        app = Celery("chores")
        app.conf.result_backend = "django-db"
        app.conf.result_expires = settings.CELERY_RESULT_EXPIRES
        freeze_imported_names()
        app.backend.cleanup()
    elif CHORE == "knox-expired":
        from knox.models import AuthToken

        AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    else:
        from django.core.management import call_command, get_commands, load_command_class

        command = load_command_class(get_commands()[CHORE], CHORE)
        freeze_imported_names()
        call_command(command, *ARGS, verbosity=0)


run()

# For bench/pack.ts: the process's peak RSS (ru_maxrss, KiB on Linux), as bench/peak-rss.mjs does for node.
if os.environ.get("BENCH_PEAK_RSS_FILE"):
    import resource

    with open(os.environ["BENCH_PEAK_RSS_FILE"], "w") as peak:
        peak.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
