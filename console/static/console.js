// Switchboard console: live updates from /events (server-sent events). No framework, no build step.
// A page section marked data-live is fetched again and swapped in when an event of its tenant
// arrives; the ticket page only for events about its own ticket. A section with data-every
// is also fetched every so many seconds (the dashboard: waits grow and agents change status
// without a ticket event). Each time the stream opens the section is fetched once too.
"use strict";

(function () {
  const live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) {
    return;
  }
  const ticketId = live.dataset.ticket ? Number(live.dataset.ticket) : null;
  const badge = document.getElementById("live");
  let timer = null;
  let busy = false;

  async function refresh() {
    if (busy) {
      timer = setTimeout(refresh, 300);
      return;
    }
    busy = true;
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (answer.ok) {
        const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = doc.getElementById(live.id);
        const current = document.getElementById(live.id);
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
        }
        for (const tab of document.querySelectorAll(".tabs a[id]")) {
          const other = doc.getElementById(tab.id);
          if (other) {
            tab.replaceWith(document.importNode(other, true));
          }
        }
      }
    } finally {
      busy = false;
    }
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);  // a burst of events makes one fetch
  }

  const every = Number(live.dataset.every || 0);
  if (every > 0) {
    setInterval(soon, every * 1000);
  }

  const source = new EventSource(live.dataset.live);
  // Open (and open again after a lost connection): fetch once, for what changed between this
  // page's rendering and the stream's start, which no event will tell.
  source.addEventListener("open", function () { if (badge) { badge.hidden = false; } soon(); });
  source.addEventListener("error", function () { if (badge) { badge.hidden = true; } });
  source.addEventListener("ticket", function (event) {
    let data = {};
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (ticketId === null || data.ticket_id === ticketId) {
      soon();
    }
  });
})();
