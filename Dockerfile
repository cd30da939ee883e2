# The Springhook app image: one image for every role (web, worker, beat, migrate); the
# command chooses the role (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPRINGHOOK_ENV=production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    WEB_BIND=0.0.0.0:8000

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the pins change.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Everything the processes load at run time: the apps and the packages they import, and
# the project's templates (tests/test_deployment.py builds this tree and runs it).
COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
COPY core ./core
COPY springhook ./springhook
COPY catalog ./catalog
COPY apikeys ./apikeys
COPY changes ./changes
COPY webhooks ./webhooks
COPY deliveries ./deliveries
COPY portal ./portal
# The partner portal renders the partner guide, the contract and their screenshots.
COPY docs ./docs
COPY adminpolicy ./adminpolicy

# Static files are gathered (hashed and compressed) at build time, so the web server
# serves them from the image. Production settings need these variables to load; the
# values exist only for this step and are not kept in the image.
RUN SECRET_KEY_FOR_BUILD="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    && DJANGO_SECRET_KEY="$SECRET_KEY_FOR_BUILD" DJANGO_ALLOWED_HOSTS=localhost \
       DATABASE_URL=sqlite:////tmp/unused.sqlite3 API_BASE_URL=https://build.invalid \
       python manage.py collectstatic --no-input -v 0

# The app runs as an unprivileged user that cannot change its own code.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin springhook
USER springhook

# Inside the container gunicorn listens on every interface (WEB_BIND), so that the proxy
# container reaches it; it believes X-Forwarded-Proto only from FORWARDED_ALLOW_IPS
# (loopback unless set: docker-compose.yml sets the proxy's network).
EXPOSE 8000
CMD ["gunicorn", "springhook.wsgi"]
