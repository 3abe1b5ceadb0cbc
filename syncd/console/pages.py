"""The one place page modules are registered.

Each module exposes ``add_routes(router: web.UrlDispatcher) -> None`` and adds its routes with
names starting ``console.`` (tests/test_api_schema.py leaves those out of the API's routes). A
new page: write the module, add it to :data:`PAGE_MODULES`, add its template(s) extending
``base.html``. See README.md beside this file.
"""

from __future__ import annotations

from types import ModuleType

from syncd.console import history_pages, oauth_pages, overview, plugins_page, sync_page, wizard

PAGE_MODULES: list[ModuleType] = [
    overview,
    plugins_page,
    oauth_pages,
    sync_page,
    wizard,
    history_pages,
]
