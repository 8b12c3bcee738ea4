"""
The schema operations of django-rest-passwordreset's migrations 0001 to 0005, in their order
(0002 as it runs on Django 2.1 and later; its data step has nothing to do on an empty table).
"""
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        # 0001_initial
        migrations.CreateModel(
            name="ResetPasswordToken",
            fields=[
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("ip_address", models.GenericIPAddressField(default="127.0.0.1")),
                ("user_agent", models.CharField(default="", max_length=256)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=models.CASCADE, related_name="password_reset_tokens", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
        ),
        # 0002_pk_migration
        migrations.AlterField(
            model_name="resetpasswordtoken",
            name="key",
            field=models.CharField(db_index=True, primary_key=False, max_length=64, unique=True),
        ),
        migrations.AddField(
            model_name="resetpasswordtoken",
            name="id",
            field=models.AutoField(primary_key=True, serialize=False),
            preserve_default=False,
        ),
        # 0003_allow_blank_and_null_fields
        migrations.AlterField(
            model_name="resetpasswordtoken",
            name="ip_address",
            field=models.GenericIPAddressField(blank=True, default="", null=True),
        ),
        migrations.AlterField(
            model_name="resetpasswordtoken", name="user_agent", field=models.CharField(blank=True, default="", max_length=256)
        ),
        # 0004_alter_resetpasswordtoken_user_agent
        migrations.AlterField(
            model_name="resetpasswordtoken", name="user_agent", field=models.CharField(blank=True, default="", max_length=512)
        ),
        # 0005_resetpasswordtoken_created_at_index
        migrations.AddIndex(
            model_name="resetpasswordtoken", index=models.Index(fields=["created_at"], name="drpr_token_created_at_idx")
        ),
    ]
