"""gunicorn reads this file from its working directory, the project's root.

It loads the settings in gunicorn's master process, before it binds a port or starts a
worker, so that a missing or bad variable ends gunicorn with one line naming it (exit
status 78) instead of a worker that fails to boot with a traceback.
"""

import os

from springhook.env import configuration_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")

with configuration_errors_exit():
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 -- loading the settings is the point

# gunicorn's control socket (for `gunicornc`) lives in $HOME/.gunicorn, and the service
# users of the image and of the systemd units have no writable home: without this, every
# start logs an error. Nothing here uses the control interface.
control_socket_disable = True
