"""The console's jinja2 environment, made when the first page is rendered.

jinja2 (and compiling the templates) is a good part of what the daemon would import at start-up
for pages most daemons never serve: :class:`Templates` imports it on first need, and
:func:`syncd.console.web.console_middleware` makes it in a thread before the first page's
handler runs, so that the event loop does not wait for the import either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any


class Templates:
    def __init__(self, filters: Mapping[str, Callable[..., Any]]) -> None:
        self.filters = dict(filters)
        self._environment: Any = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._environment is not None

    def environment(self) -> Any:
        """The ``jinja2.Environment`` (made once; any thread)."""
        if self._environment is None:
            with self._lock:
                if self._environment is None:
                    import jinja2

                    environment = jinja2.Environment(
                        loader=jinja2.PackageLoader("syncd.console", "templates"),
                        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                        undefined=jinja2.StrictUndefined,
                        trim_blocks=True,
                        lstrip_blocks=True,
                    )
                    environment.filters.update(self.filters)
                    self._environment = environment
        return self._environment

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return str(self.environment().get_template(name).render(context))
