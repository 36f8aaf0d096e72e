// The platform's behaviour in the browser: progressive enhancement only; every page works without it.
// Loaded from our static files (CSP script-src 'self'); data reaches it through json_script elements.
"use strict";

(function () {
  const PALETTE = ["#0b5cad", "#d0611d", "#1b6e3a", "#8a2be2", "#a4161a", "#00798c", "#6b4a00", "#5b6776"];

  // A canvas with data-chart="ID" draws the chart described by the JSON in <script id="ID">:
  // {"type": "line" | "bar", "labels": [...], "datasets": [{"label": "...", "data": [...]}],
  //  "x_label": "...", "y_label": "..."}. A null value in data is a suppressed cell: no bar, no point.
  function drawCharts(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const spec = JSON.parse(source.textContent);
      canvas.dataset.drawn = "1";
      new window.Chart(canvas, {
        type: spec.type,
        data: {
          labels: spec.labels,
          datasets: spec.datasets.map(function (set, i) {
            const colour = PALETTE[i % PALETTE.length];
            return {
              label: set.label, data: set.data, borderColor: colour, backgroundColor: colour,
              spanGaps: false, tension: 0, pointRadius: spec.labels.length > 60 ? 0 : 2,
            };
          }),
        },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { legend: { display: spec.datasets.length > 1 } },
          scales: {
            x: { title: { display: !!spec.x_label, text: spec.x_label || "" } },
            y: { beginAtZero: true, title: { display: !!spec.y_label, text: spec.y_label || "" } },
          },
        },
      });
    });
  }

  // <span data-countdown="SECONDS"> counts down once a second; at zero the page reloads, so that
  // what the server now allows (break-glass expired) is what the page shows.
  function startCountdowns(root) {
    root.querySelectorAll("[data-countdown]").forEach(function (el) {
      if (el.dataset.counting) return;
      el.dataset.counting = "1";
      const end = Date.now() + Number(el.dataset.countdown) * 1000;
      function tick() {
        const left = Math.max(0, Math.round((end - Date.now()) / 1000));
        const minutes = Math.floor(left / 60);
        const seconds = String(left % 60).padStart(2, "0");
        el.textContent = minutes + ":" + seconds;
        if (left <= 0) {
          window.location.reload();
          return;
        }
        window.setTimeout(tick, 1000);
      }
      tick();
    });
  }

  function enhance(root) {
    drawCharts(root);
    startCountdowns(root);
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:afterSettle", function (event) { enhance(event.target); });
})();
