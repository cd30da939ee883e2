"""The Celery app `springhook`: workers run the per-webhook tasks, beat the dispatch tick."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")

app = Celery("springhook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
