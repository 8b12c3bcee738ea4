#!/usr/bin/env python3
"""The Django project the pack's equality tests migrate and run upstream's commands in."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chores.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
