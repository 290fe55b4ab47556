// The login page: when the browser still holds a session (its access cookie expired after
// 15 minutes, but the refresh cookie is alive), continue it instead of asking for the
// password again. Tried once a minute at most, so a refused session never loops.
(function () {
  "use strict";
  function go() {
    if (!window.batonRefreshSession || !/(?:^|; )baton_csrf=/.test(document.cookie)) return;
    var last = Number(sessionStorage.getItem("batonResumeTried") || 0);
    if (Date.now() - last < 60 * 1000) return;
    sessionStorage.setItem("batonResumeTried", String(Date.now()));
    window.batonRefreshSession().then(function (ok) {
      if (!ok) return;
      var next = document.querySelector('input[name="next"]');
      window.location.replace(next && next.value ? next.value : "/app");
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go);
  else go();
})();
