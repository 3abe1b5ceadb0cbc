"""The long-running service: ``syncd run``.

* :mod:`syncd.daemon.service` — lifecycle: start-up order, signals, reload, shutdown deadline.
* :mod:`syncd.daemon.scheduler` — one APScheduler job per sync; one run per sync at a time.
* :mod:`syncd.daemon.api` — the local HTTP API (design.md §3.3) and ``/metrics``.
* :mod:`syncd.daemon.notify` — the systemd notification protocol, without libsystemd.
* :mod:`syncd.daemon.client` and :mod:`syncd.daemon.commands` — the control commands
  (``status``, ``trigger``, ``pause``, ``resume``, ``reload``, ``healthcheck``) over that API.

Only :mod:`syncd.daemon.commands` is imported by the CLI at start-up; everything heavy is
imported when a daemon command actually runs, so ``syncd healthcheck`` stays quick.
"""
