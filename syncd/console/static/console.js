// syncd console: live updates from the event stream, and forms posted without a reload.
// Hand-written, no dependencies, no build step. The pages work without it: every form is a
// plain POST that redirects back. See syncd/console/README.md for the data-* hooks it reads.
(function () {
  "use strict";

  var body = document.body;
  var base = body.getAttribute("data-base-path") || "";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  // the last progress of runs that finished while this page was open, by sync
  var finished = {};
  var refreshTimer = null;

  function number(n) {
    return (n || 0).toLocaleString("en");
  }

  function say(text) {
    var live = document.getElementById("live");
    if (!live) return;
    live.textContent = text;
    live.hidden = !text;
  }

  function cards(sync) {
    return document.querySelectorAll('[data-sync="' + CSS.escape(sync) + '"]');
  }

  function showProgress(card, p, done) {
    var box = card.querySelector('[data-field="progress"]');
    if (!box) return;
    var bar = box.querySelector('[data-field="bar"]');
    var text = box.querySelector('[data-field="progress-text"]');
    var total = Math.max(p.total || 0, p.written || 0);
    if (bar) {
      bar.max = Math.max(total, 1);
      bar.value = done ? bar.max : (p.written || 0);
    }
    if (text) {
      text.textContent = (done ? "finished · " : "") +
        "listed " + number(p.listed) + " · planned " + number(p.planned) +
        " · written " + number(p.written) + " of " + number(total);
    }
    box.hidden = false;
    box.setAttribute("data-done", done ? "yes" : "no");
  }

  function onProgress(data) {
    if (!data || !data.sync) return;
    cards(data.sync).forEach(function (card) {
      showProgress(card, data, false);
    });
    lastProgress[data.sync] = data;
  }
  var lastProgress = {};

  // Ask the server for this page again and swap in the parts marked data-refresh (by id): the
  // page is rendered in one place only, the server.
  function refresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      fetch(location.pathname + location.search, {
        headers: { "Accept": "text/html" },
        credentials: "same-origin",
      }).then(function (response) {
        if (response.redirected || response.status === 401) {
          location.reload();  // signed out: show the sign-in page
          return null;
        }
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("[data-refresh][id]").forEach(function (node) {
          var old = document.getElementById(node.id);
          if (!old) return;
          // keep the keyboard focus where it was
          var focused = old.contains(document.activeElement) ? document.activeElement : null;
          var key = focused && focused.getAttribute("data-field");
          old.replaceWith(node);
          if (key) {
            var again = node.querySelector('[data-field="' + key + '"]');
            if (again && !again.disabled) again.focus();
          }
        });
        Object.keys(finished).forEach(function (sync) {
          cards(sync).forEach(function (card) {
            if (card.getAttribute("data-state") !== "running") {
              showProgress(card, finished[sync], true);
            }
          });
        });
        document.dispatchEvent(new CustomEvent("syncd:refreshed"));
      }).catch(function () { /* the stream reconnects and refreshes again */ });
    }, 150);
  }

  function onFinished(data) {
    if (!data || !data.sync) return;
    var p = lastProgress[data.sync] || { listed: 0, planned: 0, written: 0, total: 0 };
    finished[data.sync] = p;
    say("Run " + (data.run_id || "") + " of " + data.sync + ": " + String(data.outcome).replace("_", " "));
    refresh();
  }

  function connect() {
    if (!window.EventSource || body.getAttribute("data-signed-in") !== "yes") return;
    var source = new EventSource(base + "/api/v1/events");
    source.addEventListener("hello", function () {
      body.setAttribute("data-live", "yes");
    });
    source.addEventListener("run.progress", function (e) { onProgress(JSON.parse(e.data)); });
    source.addEventListener("run.started", function (e) {
      var data = JSON.parse(e.data);
      delete finished[data.sync];
      refresh();
    });
    source.addEventListener("run.finished", function (e) { onFinished(JSON.parse(e.data)); });
    source.addEventListener("sync.state", refresh);
    source.addEventListener("syncs.changed", refresh);
    source.addEventListener("error", function (e) {
      if (e.data) {
        var data = JSON.parse(e.data);
        say(data.sync + ": " + (data.message || data.outcome));
      }
    });
    source.onerror = function () {
      body.setAttribute("data-live", "no");
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 5000);
      }
    };
  }

  // Forms marked data-async are posted with fetch (CSRF token in a header as well), so that
  // the page stays and the event stream shows what happens.
  document.addEventListener("submit", function (event) {
    var formEl = event.target;
    if (!formEl.hasAttribute || !formEl.hasAttribute("data-async") || !window.fetch) return;
    event.preventDefault();
    var button = formEl.querySelector("button");
    if (button) button.disabled = true;
    fetch(formEl.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(formEl)),
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) {
          say(data.message || "Done.");
        } else {
          say((data.error && data.error.message) || "That did not work (HTTP " + response.status + ").");
          if (button) button.disabled = false;
        }
        refresh();
      });
    }).catch(function () {
      if (button) button.disabled = false;
      say("The daemon did not answer.");
    });
  });

  connect();
})();
