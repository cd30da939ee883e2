"""Drive the Django admin over real HTTP the way a browser does: log in, fill a change form."""

from html.parser import HTMLParser

import requests


class _FormFields(HTMLParser):
    """The fields a browser would submit from the form with id `form_id`."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
        if not self.inside:
            return
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "checkbox"):
            self.fields[name] = attributes.get("value", "")
        elif tag == "input" and name and "checked" in attributes:
            self.fields[name] = attributes.get("value", "on")
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attributes:
            self.fields[self._select] = attributes.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            # Browsers drop the one newline that follows <textarea>.
            value = self.fields[self._textarea] + data
            self.fields[self._textarea] = value.removeprefix("\n")


def form_fields(html: str, form_id: str) -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    return parser.fields


class AdminBrowser:
    """A logged-in admin session: cookies and CSRF tokens handled like a browser."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def login(self, username: str, password: str) -> None:
        url = f"{self.base_url}/admin/login/"
        fields = form_fields(self.session.get(url, timeout=30).text, "login-form")
        fields.update(username=username, password=password)
        response = self.session.post(url, data=fields, timeout=30)
        response.raise_for_status()
        if "sessionid" not in self.session.cookies:
            raise AssertionError(f"admin login failed: {response.status_code} {response.url}")

    def change(self, path: str, form_id: str, **values: str) -> requests.Response:
        """Open the change form at `path`, set `values`, and press "Save"."""
        url = f"{self.base_url}{path}"
        page = self.session.get(url, timeout=30)
        page.raise_for_status()
        fields = form_fields(page.text, form_id)
        missing = set(values) - set(fields)
        if missing:
            raise AssertionError(f"the form has no field {sorted(missing)}: {sorted(fields)}")
        fields.update(values, _save="Save")
        response = self.session.post(url, data=fields, timeout=30)
        response.raise_for_status()
        if "errornote" in response.text:
            raise AssertionError(f"the admin refused the change:\n{response.text[:3000]}")
        return response
