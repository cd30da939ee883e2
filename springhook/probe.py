"""A container health probe: exit 0 when the local web server answers 200 at a path.

    python -m springhook.probe /admin/login/ [--port 8000]

Only the standard library, and Django is not started, so it is cheap enough to run every
few seconds next to the web server. The request carries what a real one would: a Host
header the site accepts (the first of DJANGO_ALLOWED_HOSTS) and, as the TLS proxy in
front would, `X-Forwarded-Proto: https`. Redirects are not followed: a redirect here
means the site would redirect every request, which is not healthy.
"""

import argparse
import http.client
import os
import sys


def probe_host() -> str:
    """A Host header value the site's ALLOWED_HOSTS accepts."""
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def probe(*, path: str, port: int, timeout: float) -> tuple[bool, str]:
    """Ask the web server for `path`; (healthy, what it answered)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "GET", path, headers={"Host": probe_host(), "X-Forwarded-Proto": "https"}
        )
        response = connection.getresponse()
        return response.status == 200, f"{response.status} {response.reason}"
    except OSError as exc:
        return False, f"no answer: {exc}"
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="e.g. /admin/login/")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    healthy, answer = probe(path=args.path, port=args.port, timeout=args.timeout)
    print(f"{args.path}: {answer}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
