"""
The schema operations of django-rest-knox's migrations 0001 to 0009, in their order, so that
PostgreSQL gets the table, constraint and index names a project migrated by knox has. (0006's
data step, which deleted tokens without a key, has nothing to do on an empty table.)
"""
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        # 0001_initial
        migrations.CreateModel(
            name="AuthToken",
            fields=[
                ("key", models.CharField(max_length=64, serialize=False, primary_key=True)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("user", models.ForeignKey(to=settings.AUTH_USER_MODEL, related_name="auth_token_set", on_delete=models.CASCADE)),
            ],
        ),
        # 0002_auto_20150916_1425
        migrations.DeleteModel("AuthToken"),
        migrations.CreateModel(
            name="AuthToken",
            fields=[
                ("digest", models.CharField(max_length=64, serialize=False, primary_key=True)),
                ("salt", models.CharField(max_length=16, serialize=False, unique=True)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("user", models.ForeignKey(to=settings.AUTH_USER_MODEL, related_name="auth_token_set", on_delete=models.CASCADE)),
            ],
        ),
        # 0003_auto_20150916_1526
        migrations.AlterField(
            model_name="authtoken", name="digest", field=models.CharField(primary_key=True, serialize=False, max_length=128)
        ),
        migrations.AlterField(model_name="authtoken", name="salt", field=models.CharField(unique=True, max_length=16)),
        # 0004_authtoken_expires
        migrations.AddField(model_name="authtoken", name="expires", field=models.DateTimeField(null=True, blank=True)),
        # 0005_authtoken_token_key
        migrations.AddField(
            model_name="authtoken", name="token_key", field=models.CharField(blank=True, db_index=True, max_length=8, null=True)
        ),
        # 0006_auto_20160818_0932
        migrations.AlterField(
            model_name="authtoken",
            name="token_key",
            field=models.CharField(db_index=True, default="", max_length=8),
            preserve_default=False,
        ),
        # 0007_auto_20190111_0542
        migrations.RenameField(model_name="authtoken", old_name="expires", new_name="expiry"),
        # 0008_remove_authtoken_salt
        migrations.RemoveField(model_name="authtoken", name="salt"),
        # 0009_extend_authtoken_field
        migrations.AlterField(model_name="authtoken", name="token_key", field=models.CharField(db_index=True, max_length=25)),
    ]
