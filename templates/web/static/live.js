// The dashboard's live part: replaced when the server says it changed (server-sent events), and its
// SLA clocks counted down here every second from the due times it carries, so a breach shows the
// moment it happens without asking the server.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }

  function left(seconds) {
    var s = Math.abs(Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var text = (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
    return seconds < 0 ? text + " over" : text + " left";
  }

  function tick() {
    var now = Date.now();
    live.querySelectorAll("[data-due]").forEach(function (clock) {
      var due = Number(clock.getAttribute("data-due"));
      var warn = Number(clock.getAttribute("data-warn"));
      var seconds = (due - now) / 1000;
      var state = seconds < 0 ? "breached" : (now >= warn ? "at-risk" : "ok");
      clock.setAttribute("data-state", state);
      var shown = clock.querySelector(".left");
      if (shown) { shown.textContent = left(seconds); }
      var label = clock.querySelector(".state");
      if (label) { label.textContent = state === "at-risk" ? "at risk" : state; }
    });
  }

  if (window.EventSource) {
    var source = new EventSource(live.getAttribute("data-stream"));
    source.onmessage = function (event) {
      live.innerHTML = event.data;  // rendered and escaped by the server
      tick();
    };
  }
  tick();
  setInterval(tick, 1000);
})();
