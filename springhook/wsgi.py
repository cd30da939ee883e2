import os

from django.core.wsgi import get_wsgi_application

from springhook.env import configuration_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")

# A bad or missing variable ends the process with one line instead of a traceback. Status 4
# is gunicorn's "App failed to load": its master then stops, instead of booting the worker
# again and again. (gunicorn.conf.py catches the same error earlier, in the master.)
with configuration_errors_exit(status=4):
    application = get_wsgi_application()
