// The salesperson's pages: the framed personal report grows to its content's height, so that
// it reads as part of the page (phones included) instead of a box that scrolls on its own.
// Without this file the frame keeps its CSS height and scrolls. No inline scripts (the CSP).
(function () {
  "use strict";

  function size(frame) {
    var doc;
    try {
      doc = frame.contentDocument;
    } catch (e) {
      return;  // not same-origin: keep the default height
    }
    if (!doc || !doc.documentElement || !doc.body) return;
    var height = Math.max(doc.documentElement.scrollHeight, doc.body.scrollHeight);
    if (height > 0) {
      frame.style.height = height + 2 + "px";
      frame.setAttribute("data-sized", "");
    }
  }

  function watch(frame) {
    frame.addEventListener("load", function () {
      size(frame);
      setTimeout(function () { size(frame); }, 400);  // after its fonts settle
    });
    var doc = null;
    try { doc = frame.contentDocument; } catch (e) { doc = null; }
    if (doc && doc.readyState === "complete" && doc.body && doc.body.childElementCount) size(frame);
  }

  var frames = document.querySelectorAll("iframe[data-autoheight]");
  frames.forEach(watch);
  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { frames.forEach(size); }, 150);
  });
})();
