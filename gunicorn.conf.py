"""gunicorn reads this file from its working directory, the project's root.

It loads the settings in gunicorn's master process, before it binds a port or starts a
worker, so that a missing or bad variable ends gunicorn with one line naming it (exit
status 78) instead of a worker that fails to boot with a traceback.

Where it listens and whom it trusts (docs/operations.md, "The proxy in front"):

- `WEB_BIND`: the address, default `127.0.0.1:8000`, reachable only from this machine,
  where the TLS proxy runs; `unix:/run/springhook/web.sock` for a socket. The Docker
  image sets `0.0.0.0:8000` inside its container, which in compose only the proxy's
  network and the app's own reach.
- `FORWARDED_ALLOW_IPS` (gunicorn's own variable): the addresses (or networks) whose
  `X-Forwarded-Proto: https` makes a request HTTPS; default `127.0.0.1,::1`. Django
  reads the scheme gunicorn decided and never the header itself, so a client that
  reaches gunicorn directly cannot pass a plain HTTP request off as HTTPS.
- `WEB_CONCURRENCY` (gunicorn's own variable): worker processes, default 1.
"""

import os

from springhook.env import configuration_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")

with configuration_errors_exit():
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 -- loading the settings is the point

bind = [address.strip() for address in os.environ.get("WEB_BIND", "127.0.0.1:8000").split(",")
        if address.strip()]
# gunicorn's own lines (start, workers booting and exiting) and one `event=request` line
# per request, in the same logfmt as everything else (springhook/logs.py).
logconfig_dict = settings.LOGGING
# gunicorn's control socket (for `gunicornc`) lives in $HOME/.gunicorn, and the service
# users of the image and of the systemd units have no writable home: without this, every
# start logs an error. Nothing here uses the control interface.
control_socket_disable = True
