// Live progress of an executing plan: polls the plan's progress endpoint
// and updates the page in place until the plan ends.
(function () {
  "use strict";
  var el = document.getElementById("plan");
  if (!el) { return; }
  var id = el.getAttribute("data-plan");
  var ended = ["succeeded", "failed", "aborted", "interrupted", "cancelled", "expired"];

  function text(elid, s) {
    var e = document.getElementById(elid);
    if (e) { e.textContent = s; }
  }

  function render(p) {
    el.setAttribute("data-status", p.status);
    text("plan-status", p.status);
    text("plan-message", p.message);
    text("plan-done", p.done + " of " + p.total + " moves done");
    var bar = document.getElementById("plan-progress");
    if (bar) { bar.max = p.total; bar.value = p.done; }
    p.steps.forEach(function (s) {
      var row = document.querySelector('tr[data-step="' + s.step + '"]');
      if (!row) { return; }
      row.querySelector(".step-status").textContent = s.status;
      row.querySelector(".step-error").textContent = s.error;
    });
    if (ended.indexOf(p.status) >= 0) {
      // The buttons that applied to a running plan no longer do.
      var abort = document.getElementById("abort");
      if (abort) { abort.remove(); }
    }
  }

  function tick() {
    fetch("/plans/" + encodeURIComponent(id) + "/progress", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("progress: HTTP " + r.status); }
        return r.json();
      })
      .then(function (p) {
        render(p);
        if (ended.indexOf(p.status) < 0) { setTimeout(tick, 1000); }
      })
      .catch(function (err) {
        text("plan-message", "progress unavailable (" + err.message + "), retrying");
        setTimeout(tick, 3000);
      });
  }

  if (el.getAttribute("data-status") === "executing") { tick(); }
})();
