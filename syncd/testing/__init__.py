"""Test harnesses: for syncd's own tests and for connector authors' tests.

* :mod:`syncd.testing.runner` — :class:`~syncd.testing.runner.Syncd`: ``syncd`` run in a
  subprocess on a config directory and a state directory, as a user runs it (engine-level tests
  against an app's emulator).
* :mod:`syncd.testing.daemon` — :class:`~syncd.testing.daemon.DaemonProcess`: a real
  ``syncd run`` with its API, its log and a stand-in for systemd's notify socket; and
  :func:`~syncd.testing.daemon.wait_until`, which waits for a state with a generous deadline.
* :mod:`syncd.testing.memory` — an in-memory app and its connector (``memory``).
* :mod:`syncd.testing.testcsv` — the CSV connector with switches (``testcsv``): slow, held in
  the middle of a run until released, or failing as real apps fail.

Nothing here is imported by syncd itself, and importing this package imports none of them.
"""
