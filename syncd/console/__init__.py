"""The web console (issue 13): HTML pages at ``/`` on the API's listener, signed in with the API
token, live through the event stream ``GET /api/v1/events``. README.md beside this file is the
contract for page modules; docs/console.md is the user's guide.

Nothing is imported here: ``syncd console`` (command.py) must start without aiohttp or jinja2.
The daemon's API mounts the console with :func:`syncd.console.setup.setup_console`.
"""
