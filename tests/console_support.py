"""The web console over plain HTTP (requests), for the tests that speak to it without a browser
(test_console_http, test_console_history): signing in with the API token, and the page's CSRF
token that every form post carries."""

from __future__ import annotations

import re

import requests


def signed_in(
    url: str, token: str, headers: dict[str, str] | None = None, keep_secure: bool = False
) -> requests.Session:
    """A session signed in at ``url`` (the console's root) with the API ``token``, through the
    sign-in form as a person posts it. ``keep_secure``: send the form's Secure cookie over plain
    http anyway (a test proxy that says it is https)."""
    browser = requests.Session()
    browser.headers.update(headers or {})
    form = browser.get(url + "/signin", timeout=60)
    field = re.search(r'name="signin_csrf" value="([^"]+)"', form.text)
    assert field, form.text
    if keep_secure:
        for cookie in browser.cookies:
            cookie.secure = False
    answer = browser.post(
        url + "/signin",
        data={"token": token, "next": "/", "signin_csrf": field.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303, answer.text
    return browser


def page_csrf(browser: requests.Session, url: str) -> str:
    """The CSRF token of the signed-in session's pages."""
    page = browser.get(url + "/", timeout=60)
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)
