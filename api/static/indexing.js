// What the server is indexing (a progress line), the roots it watches, and the roots paused
// with their reason: from GET /api/index/status, every few seconds while a job runs.
(() => {
  "use strict";
  const BUSY_MS = 2000;   // while a job runs
  const IDLE_MS = 15000;  // otherwise: a watched folder may start one at any time

  function line(className, text) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;  // paths and reasons are text, never markup
    return p;
  }

  function progress(job) {
    const where = job.paths.join(", ");
    const p = line("indexing-active", job.total
      ? `indexing ${job.done} of ${job.total} images in ${where}`
      : `indexing ${where}: looking for changes`);
    if (job.total) {
      const bar = document.createElement("progress");
      bar.max = job.total;
      bar.value = Math.min(job.done, job.total);
      p.prepend(bar);
    }
    return p;
  }

  function render(box, status) {
    box.replaceChildren();
    if (status.active) box.append(progress(status.active));
    for (const held of status.paused) {
      const p = line("indexing-paused", ` ${held.root}: ${held.reason}`);
      const label = document.createElement("strong");
      label.textContent = "Paused";
      p.prepend(label);
      box.append(p);
    }
    if (status.watching.length) {
      const roots = status.watching.map((w) => `${w.root} (${w.mode === "events" ? "live" : "polled"})`);
      box.append(line("indexing-watching", `watching ${roots.join(", ")}`));
    }
    box.hidden = !box.childElementCount;
  }

  async function poll(box) {
    let busy = false;
    try {
      const response = await fetch("/api/index/status");
      if (response.ok) {
        const status = await response.json();
        render(box, status);
        busy = Boolean(status.active);
      }
    } catch (error) {
      // the server restarting: try again later
    }
    setTimeout(() => poll(box), busy ? BUSY_MS : IDLE_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("indexing");
    if (box) poll(box);
  });
})();
