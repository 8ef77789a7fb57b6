// The dashboard's behaviour: actions with a confirmation, charts (uPlot), events, and the log tails kept
// scrolled to their end.  htmx polls each page's live fragment; this file needs no build step.
(function () {
  "use strict";
  const REFRESH_MS = 3000;
  const MAX_OTHER_METRICS = 6;
  const PALETTE = ["#2f6fde", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5f3dc4"];
  const charts = new Map();

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function post(url) {
    const answer = await fetch(url, {
      method: "POST", credentials: "same-origin", body: "{}",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    });
    let body = null;
    try { body = await answer.json(); } catch (e) { body = null; }
    return { ok: answer.ok, status: answer.status, body: body };
  }

  function confirmThen(button) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = button.dataset.confirm;
    dialog.returnValue = "";
    dialog.addEventListener("close", async function () {
      if (dialog.returnValue !== "confirm") return;
      const said = document.getElementById("action-result");
      said.textContent = button.textContent + ": sent…";
      button.disabled = true;
      const answer = await post(button.dataset.url);
      const error = answer.body && answer.body.error;
      said.textContent = answer.ok ? button.textContent + ": done." : button.textContent + " refused: " + (error || answer.status);
      if (answer.ok) window.location.reload();
      else button.disabled = false;
    }, { once: true });
    dialog.showModal();
  }

  function liveDone() {
    const live = document.querySelector("[data-done]");
    return !live || live.dataset.done === "true";
  }

  function updateButtons() {
    const done = liveDone();
    document.querySelectorAll("button[data-action]").forEach(function (button) {
      button.disabled = button.dataset.action === "retry" ? !done : done;
    });
  }

  function scrollLogs() {
    document.querySelectorAll("pre[data-log]").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  }

  // One x axis for several series (a sweep's children): the union of their steps, gaps where one has none.
  function aligned(series) {
    if (series.length === 1) return [series[0].steps, series[0].values];
    const steps = Array.from(new Set(series.flatMap(function (s) { return s.steps; }))).sort(function (a, b) { return a - b; });
    const columns = series.map(function (s) {
      const at = new Map(s.steps.map(function (step, i) { return [step, s.values[i]]; }));
      return steps.map(function (step) { return at.has(step) ? at.get(step) : null; });
    });
    return [steps].concat(columns);
  }

  // Tick labels that keep a learning rate of 1e-6 readable, and a loss of 3.1415 short.
  function tick(value) {
    if (value === null || value === undefined) return "";
    const size = Math.abs(value);
    if (size !== 0 && (size < 1e-3 || size >= 1e6)) return value.toExponential(2);
    return String(Number(value.toPrecision(4)));
  }

  function options(el, series, metric) {
    const axis = getComputedStyle(document.body).color;
    return {
      width: Math.max(320, el.clientWidth - 16), height: 260, scales: { x: { time: false } },
      legend: { live: true },
      series: [{ label: "step" }].concat(series.map(function (s, i) {
        return { label: series.length > 1 ? s.job_id : metric, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true };
      })),
      axes: [
        { stroke: axis, grid: { stroke: "rgba(128,128,128,.15)" } },
        { stroke: axis, grid: { stroke: "rgba(128,128,128,.15)" }, size: 64,
          values: function (u, splits) { return splits.map(tick); } },
      ],
    };
  }

  async function draw(el) {
    const query = new URLSearchParams();
    el.dataset.jobs.split(",").filter(Boolean).forEach(function (job) { query.append("job", job); });
    query.append("metric", el.dataset.metric);
    const answer = await fetch("/api/plot?" + query.toString(), { credentials: "same-origin" });
    if (!answer.ok) {
      el.textContent = el.dataset.remote ? "A cloud job's metrics are on its cluster." : "No " + el.dataset.metric + " logged.";
      return null;
    }
    const doc = await answer.json();
    const series = doc.series.filter(function (s) { return s.steps.length > 0; });
    el.dataset.points = String(series.reduce(function (n, s) { return n + s.steps.length; }, 0));
    if (series.length === 0) {
      if (!charts.has(el)) el.textContent = "Waiting for the first " + el.dataset.metric + "…";
      return doc;
    }
    const data = aligned(series);
    const shown = charts.get(el);
    if (shown && shown.series.length === data.length) {
      shown.setData(data);
    } else {
      if (shown) shown.destroy();
      el.textContent = "";
      charts.set(el, new uPlot(options(el, series, el.dataset.metric), data, el));
    }
    el.dataset.drawn = "true";
    return doc;
  }

  function addOtherMetrics(doc) {
    const section = document.getElementById("other-metrics");
    if (!section || !doc || !doc.series.length) return;
    const holder = section.querySelector(".charts");
    doc.series[0].metrics.filter(function (m) { return m !== "loss"; }).slice(0, MAX_OTHER_METRICS).forEach(function (metric) {
      if (holder.querySelector('[data-metric="' + CSS.escape(metric) + '"]')) return;
      const box = document.createElement("div");
      const title = document.createElement("h3");
      title.textContent = metric;
      const chart = document.createElement("div");
      chart.className = "chart";
      chart.dataset.metric = metric;
      chart.dataset.jobs = section.dataset.jobs;
      box.append(title, chart);
      holder.append(box);
      section.hidden = false;
    });
  }

  async function showEvents() {
    const section = document.getElementById("events");
    if (!section) return;
    const answer = await fetch(section.dataset.url, { credentials: "same-origin" });
    if (!answer.ok) return;  // a server without the timeline: no section
    const doc = await answer.json();
    const events = Array.isArray(doc) ? doc : (doc.events || []);
    const list = section.querySelector("ol");
    const common = ["schema_version", "event_id", "job_id", "attempt", "at", "kind"];
    list.replaceChildren.apply(list, events.map(function (e) {
      const item = document.createElement("li");
      item.dataset.kind = e.kind || "";
      const own = Object.keys(e).filter(function (key) { return common.indexOf(key) < 0 && e[key] !== null; });
      const said = own.map(function (key) {
        const value = typeof e[key] === "object" ? JSON.stringify(e[key]) : String(e[key]);
        return key + " " + value;
      });
      const head = [(e.at || "").replace("T", " ").slice(0, 19), e.kind, e.attempt ? "attempt " + e.attempt : ""];
      item.textContent = head.concat(said).filter(Boolean).join(" · ");
      return item;
    }));
    section.hidden = events.length === 0;
  }

  async function drawAll(elements) {
    let first = null;
    for (const el of elements) {
      try {
        const doc = await draw(el);
        if (first === null) first = doc;
      } catch (e) { el.textContent = "Could not draw " + el.dataset.metric + ": " + e; }
    }
    return first;
  }

  // The loss first; the job's other metrics (named by the loss's answer) below it, in the same pass.
  async function refresh() {
    const done = liveDone();
    const loss = await drawAll(document.querySelectorAll('.chart[data-metric="loss"]'));
    addOtherMetrics(loss);
    await drawAll(document.querySelectorAll('.chart[data-metric]:not([data-metric="loss"])'));
    try { await showEvents(); } catch (e) { /* the events are an extra */ }
    if (!done) window.setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (button && !button.disabled) confirmThen(button);
  });
  document.addEventListener("htmx:afterSwap", function () { updateButtons(); scrollLogs(); });
  document.addEventListener("DOMContentLoaded", function () {
    scrollLogs();
    if (document.querySelector(".chart[data-metric]")) refresh();
  });
})();
