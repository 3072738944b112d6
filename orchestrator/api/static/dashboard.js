// Re-fetches a live page's changing parts every couple of seconds, with the session cookie.
// The overview swaps its whole panel area; a page marked data-parts (a job's page) swaps each
// part the fragment sends for the element with the same id, except a part someone is typing
// in, and a part with a data-key that did not change (its forms stay as they are).
(() => {
  "use strict";
  const root = document.querySelector("[data-src][data-refresh-ms]");
  const live = document.getElementById("live");
  if (!root) return;
  const every = Number(root.dataset.refreshMs) || 2000;
  const byParts = root.hasAttribute("data-parts");
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

  function inUse(part) {
    if (part.contains(document.activeElement)) return true;
    return Array.from(part.querySelectorAll("input, select, textarea")).some(
      (f) => f.type !== "hidden" && f.value !== f.defaultValue);
  }

  function swapParts(html) {
    const fresh = document.createElement("template");
    fresh.innerHTML = html;  // escaped by the server's templates; scripts never run from here
    for (const part of Array.from(fresh.content.children)) {
      const old = part.id ? document.getElementById(part.id) : null;
      if (!old || !root.contains(old) || inUse(old)) continue;
      if (old.dataset.key !== undefined && old.dataset.key === part.dataset.key) continue;
      old.replaceWith(part);
    }
  }

  async function refresh() {
    if (busy) return;
    if (document.hidden) { later(every); return; }
    busy = true;
    try {
      const answer = await fetch(root.dataset.src, {
        credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" },
      });
      if (answer.status === 401 || answer.status === 403) {
        window.location.assign("/");  // the sign-in form says why
        return;
      }
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const html = await answer.text();
      if (byParts) swapParts(html); else root.innerHTML = html;  // escaped by the server
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
