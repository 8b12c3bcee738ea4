"""Models of the test project's own app: one tracked by django-simple-history and both by django-reversion."""
import reversion
from django.db import models
from simple_history.models import HistoricalRecords


@reversion.register()
class Shelf(models.Model):
    label = models.CharField(max_length=50)


@reversion.register()
class Item(models.Model):
    name = models.CharField(max_length=50)
    shelf = models.ForeignKey(Shelf, null=True, on_delete=models.SET_NULL)
    history = HistoricalRecords()


class Note(models.Model):
    """Not registered with reversion: its versions are not deleterevisions' to choose."""

    text = models.TextField()
    history = HistoricalRecords(table_name="inventory_note_log")
