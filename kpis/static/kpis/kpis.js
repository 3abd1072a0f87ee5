/* Draws the KPI charts (Chart.js, vendored) from the JSON the page embeds, and again after
 * every htmx swap. Series differ by colour AND by point shape and dash pattern, and the
 * legend shows the shapes, so the charts read without colour. */
(function () {
  "use strict";
  // Okabe–Ito: distinguishable with the common colour-vision deficiencies.
  var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
  var POINTS = ["circle", "triangle", "rect", "rectRot", "crossRot", "star"];
  var DASHES = [[], [6, 4], [2, 3], [10, 4, 2, 4], [1, 2], [8, 2]];

  function fmt(value, unit) {
    if (value === null || value === undefined) return "no data";
    if (unit === "share") return value.toFixed(1) + "%";
    if (unit === "seconds") return value.toFixed(2) + " h";
    if (unit === "score" || unit === "turns") return value.toFixed(2);
    return String(value);
  }

  // The x labels are ISO days ("2026-11-03"). On the axis they read "3 Nov" (with the year
  // when the range spans two): about half the width of an ISO date, so more of them fit
  // before Chart.js has to skip some. Tooltips keep the whole date.
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function dayParts(iso) {
    var parts = String(iso).split("-");
    return { year: parts[0], month: MONTHS[Number(parts[1]) - 1], day: Number(parts[2]) };
  }

  function shortDay(iso, withYear) {
    var d = dayParts(iso);
    if (!d.month || !d.day) return String(iso);
    return d.day + " " + d.month + (withYear ? " \u2019" + d.year.slice(2) : "");
  }

  function longDay(iso) {
    var d = dayParts(iso);
    return d.month && d.day ? d.day + " " + d.month + " " + d.year : String(iso);
  }

  function dateAxis(labels) {
    var spansYears = labels.length > 1 &&
      dayParts(labels[0]).year !== dayParts(labels[labels.length - 1]).year;
    return {
      ticks: {
        maxRotation: 0, // slanted dates are hard to read; skip labels instead
        autoSkip: true,
        autoSkipPadding: 16, // a clear gap between two labels
        maxTicksLimit: 12,
        callback: function (value) { return shortDay(this.getLabelForValue(value), spansYears); }
      }
    };
  }

  function axisFor(ds) {
    if (ds.unit === "turns") return "y2";
    return "y";
  }

  function lineChart(canvas, spec, labels) {
    var hasRight = spec.datasets.some(function (ds) { return axisFor(ds) === "y2"; });
    var units = spec.datasets.map(function (ds) { return ds.unit; });
    var datasets = spec.datasets.map(function (ds, i) {
      var bar = ds.key === "interactions";
      return {
        type: bar ? "bar" : "line",
        label: ds.label,
        data: ds.data,
        yAxisID: axisFor(ds),
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: bar ? "rgba(0, 114, 178, 0.25)" : COLOURS[i % COLOURS.length],
        borderDash: bar ? [] : DASHES[i % DASHES.length],
        pointStyle: bar ? "rect" : POINTS[i % POINTS.length],
        pointRadius: bar ? 0 : 4,
        borderWidth: 2,
        spanGaps: false,
        order: bar ? 2 : 1,
        kpi: ds
      };
    });
    var scales = {
      x: dateAxis(labels),
      y: { beginAtZero: units[0] !== "score", title: { display: true, text: units[0] === "share" ? "%" : units[0] === "seconds" ? "hours" : units[0] } }
    };
    if (units.every(function (u) { return u === "share"; })) { scales.y.min = 0; scales.y.max = 100; }
    if (units[0] === "score") { scales.y.min = -1; scales.y.max = 1; }
    if (hasRight) {
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "turns" } };
    }
    return new window.Chart(canvas, {
      data: { labels: labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: scales,
        plugins: {
          legend: { labels: { usePointStyle: true } },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? longDay(items[0].label) : ""; },
              label: function (ctx) {
                var ds = ctx.dataset.kpi, i = ctx.dataIndex;
                var text = ds.label + ": " + fmt(ds.data[i], ds.unit);
                if (ds.low && ds.low[i] !== null && ds.low[i] !== undefined) {
                  text += " (95% CI " + fmt(ds.low[i], ds.unit) + " – " + fmt(ds.high[i], ds.unit) + ")";
                }
                if (ds.n && ds.n[i]) text += ", n = " + ds.n[i];
                return text;
              }
            }
          }
        }
      }
    });
  }

  function calibrationChart(canvas, data) {
    return new window.Chart(canvas, {
      data: {
        labels: data.labels,
        datasets: [
          { type: "bar", label: "95% interval", data: data.interval, backgroundColor: "rgba(0, 114, 178, 0.2)", borderColor: "#0072B2", borderWidth: 1, pointStyle: "rect", order: 3 },
          { type: "line", label: "Observed approval", data: data.observed, showLine: false, pointStyle: "circle", pointRadius: 6, borderColor: "#D55E00", backgroundColor: "#D55E00", order: 1 },
          { type: "line", label: "Perfect calibration", data: data.ideal, borderDash: [6, 4], pointStyle: "crossRot", pointRadius: 4, borderColor: "#444", backgroundColor: "#444", order: 2 }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { min: 0, max: 100, title: { display: true, text: "approval %" } }, x: { title: { display: true, text: "confidence" } } },
        plugins: {
          legend: { labels: { usePointStyle: true } },
          tooltip: { callbacks: { afterBody: function (items) { var i = items[0].dataIndex; return "n = " + data.n[i]; } } }
        }
      }
    });
  }

  // Draws every chart canvas that has no chart yet (new pages and swapped-in fragments).
  function draw() {
    if (!window.Chart) return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;
      var source = document.getElementById(canvas.dataset.source);
      if (!source) return;
      var all = JSON.parse(source.textContent);
      var spec = all.charts.find(function (c) { return c.id === canvas.dataset.chart; });
      if (spec) lineChart(canvas, spec, all.labels);
    });
    document.querySelectorAll("canvas[data-calibration]").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;
      var source = document.getElementById(canvas.dataset.calibration);
      if (source) calibrationChart(canvas, JSON.parse(source.textContent));
    });
  }

  // Charts of a swapped-out fragment are detached; free them so Chart.instances stays true.
  function prune() {
    if (!window.Chart) return;
    Object.values(window.Chart.instances).forEach(function (chart) {
      if (!document.body.contains(chart.canvas)) chart.destroy();
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", function () { prune(); draw(); });
})();
