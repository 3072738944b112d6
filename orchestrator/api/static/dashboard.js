// Re-fetches the dashboard's panels every couple of seconds, with the session cookie.
(() => {
  "use strict";
  const panels = document.getElementById("panels");
  const live = document.getElementById("live");
  if (!panels) return;
  const every = Number(panels.dataset.refreshMs) || 2000;
  let timer = null;
  let failures = 0;
  let busy = false;

  function say(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  async function refresh() {
    if (busy) return;
    if (document.hidden) { later(every); return; }
    busy = true;
    try {
      const answer = await fetch(panels.dataset.src, {
        credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" },
      });
      if (answer.status === 401 || answer.status === 403) {
        window.location.assign("/");  // the sign-in form says why
        return;
      }
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      panels.innerHTML = await answer.text();  // escaped by the server's templates
      failures = 0;
      say("live", "live · updated " + new Date().toLocaleTimeString());
    } catch (error) {
      failures += 1;
      say("stale", "cannot reach the API (" + error.message + "), retrying");
    } finally {
      busy = false;
    }
    later(failures ? Math.min(every * 2 ** failures, 30000) : every);
  }

  document.addEventListener("visibilitychange", () => { if (!document.hidden) later(0); });
  later(every);
})();
