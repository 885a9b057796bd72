// Replaces the page's content with a freshly rendered copy every few seconds.
// The server renders everything; this only fetches it.
(function () {
  "use strict";
  var body = document.body;
  var content = document.getElementById("content");
  var conn = document.getElementById("conn");
  var every = parseInt(body.dataset.refreshMs, 10) || 2000;

  function refresh() {
    fetch("?fragment=1", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        content.innerHTML = html;
        body.dataset.live = "1";
        conn.textContent = "live";
        conn.className = "conn live";
      })
      .catch(function (err) {
        body.dataset.live = "0";
        conn.textContent = "disconnected: " + err.message;
        conn.className = "conn bad";
      });
  }

  refresh();
  setInterval(refresh, every);
})();
