"""What the apps share, below all of them: it imports no app and not the project package.

`__version__` is Springhook's release (the `User-Agent` partners see, the OpenAPI
document's version); `core.logfmt` formats the structured log lines.
"""

__version__ = "0.1.0"

# The exit status of a process that refuses to start for its configuration (EX_CONFIG of
# sysexits.h); the systemd units do not restart a process that ended with it.
EXIT_CONFIGURATION = 78
