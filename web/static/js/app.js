// Baton pages: small progressive enhancements. Everything works without this file, except
// that htmx requests need the CSRF header it adds. No inline scripts anywhere (the CSP).
(function () {
  "use strict";

  // --- CSRF: every htmx request carries the session's token (from <meta name="csrf-token">)
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  // --- a refused action answers a fragment that says why (403, 409, 422, 503...): htmx
  // leaves error answers unswapped, so forms inside [data-swap-errors] opt in to show them
  document.addEventListener("htmx:beforeSwap", function (event) {
    var d = event.detail;
    var elt = d.requestConfig && d.requestConfig.elt;
    if (d.xhr && d.xhr.status >= 400 && elt && elt.closest && elt.closest("[data-swap-errors]")) {
      d.shouldSwap = true;
      d.isError = false;
    }
  });

  // --- a page that is leaving (a form was posted) stops polling, so that a poll cannot
  // reload it halfway; and a page drawn as the answer to a post names its own address in
  // <link rel="canonical">, so a poll's HX-Refresh goes there instead of posting again
  var leaving = false;
  document.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) leaving = true;
  });
  window.addEventListener("pageshow", function () { leaving = false; });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var config = event.detail.requestConfig;
    if (leaving && config && config.verb === "get") event.preventDefault();
  });
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    var canonical = document.querySelector('link[rel="canonical"]');
    if (xhr && canonical && xhr.getResponseHeader("HX-Refresh") === "true"
        && canonical.href !== location.href) {
      event.preventDefault();
      location.assign(canonical.href);
    }
  });

  // --- countdowns: <time datetime="..." data-countdown> shows the time left (or overdue)
  var body = document.body;
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    var clock = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(sec);
    if (d) return (body.dataset.countdownDay || "{num} d").replace("{num}", d) + " " + pad(h) + ":" + pad(m) + ":" + pad(sec);
    return clock;
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var left = at - now;
      var template = left >= 0 ? body.dataset.countdownLeft : body.dataset.countdownOverdue;
      el.textContent = (template || "{time}").replace("{time}", span(left));
      el.classList.toggle("overdue", left < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSettle", tick);

  // --- selects marked data-autosubmit submit their (GET) form on change
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-autosubmit]") && el.form) {
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });

  // --- the customer list: how many are selected
  function countSelection() {
    var out = document.querySelector("[data-selection-count]");
    if (!out) return;
    var n = document.querySelectorAll('#select-customers input[name="customer"]:checked').length;
    out.textContent = n ? out.dataset.template.replace("{num}", n) : "";
  }
  document.addEventListener("change", function (event) {
    if (event.target.closest && event.target.closest("#select-customers")) countSelection();
  });
  countSelection();

  // --- keep the browser session alive while a page is open: renew the 15-minute access
  // cookie with the refresh cookie. One tab at a time (Web Locks), and not when another tab
  // just did it, because a refresh token works once.
  var REFRESH_EVERY_MS = 10 * 60 * 1000;
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  function refreshSession(force) {
    var csrf = cookie("baton_csrf");
    if (!csrf) return Promise.resolve(false);
    var last = Number(localStorage.getItem("batonRefreshedAt") || 0);
    if (!force && Date.now() - last < REFRESH_EVERY_MS / 2) return Promise.resolve(true);
    return fetch("/api/v1/auth/session/refresh", {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }
    }).then(function (r) {
      if (r.ok) {
        localStorage.setItem("batonRefreshedAt", String(Date.now()));
        var data = r.json ? r.json() : null;
        return Promise.resolve(data).then(function (d) {
          var meta = document.querySelector('meta[name="csrf-token"]');
          if (d && d.csrf_token && meta) meta.setAttribute("content", d.csrf_token);
          document.querySelectorAll('input[name="csrf_token"]').forEach(function (i) {
            if (d && d.csrf_token) i.value = d.csrf_token;
          });
          return true;
        });
      }
      return false;
    }).catch(function () { return false; });
  }
  function withLock(fn) {
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request("baton-session-refresh", fn);
    }
    return fn();
  }
  if (document.querySelector('meta[name="csrf-token"]') && cookie("baton_csrf")) {
    setInterval(function () { withLock(function () { return refreshSession(false); }); },
                REFRESH_EVERY_MS);
  }
  // the login page: an expired access cookie with a live session continues it (login.js)
  window.batonRefreshSession = function () {
    return withLock(function () { return refreshSession(true); });
  };
})();
