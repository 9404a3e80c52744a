// traindocs: interactive charts (uPlot) over the static plots. Progressive enhancement: a page
// shows its PNG; for each <div class="td-chart" data-chart="..."> that follows one, this script
// loads the chart JSON (written by generator/charts.py, resolved against the image's URL) and
// draws it: live legend values on hover, drag to zoom (double-click or "Reset zoom" to undo),
// click a legend entry to hide its curve, a log scale toggle and a smoothing slider.
// Names are user text: every text goes in with textContent, never as HTML.
(function () {
  "use strict";

  var WEIGHT_MAX = 0.99;
  var COLOR = /^#[0-9a-fA-F]{6}$/;
  var charts = [];

  // TensorBoard's debiased EMA, as generator/series.py: smooth (pandas ewm, alpha = 1 - weight,
  // adjust=True, ignore_na=True). Missing values (null) are skipped: the state carries over and
  // the output there is the last smoothed value (null before the first value). `counts`, when
  // given, says how many logged values each entry stands for (the mean of a bucket of a long run):
  // a bucket of n values weighs what n equal values would.
  function smooth(values, weight, counts) {
    var out = new Array(values.length);
    var i;
    if (!(weight > 0)) {
      for (i = 0; i < values.length; i++) out[i] = values[i];
      return out;
    }
    var numerator = 0, denominator = 0, seen = false;
    for (i = 0; i < values.length; i++) {
      var value = values[i];
      if (value === null || value === undefined || !isFinite(value)) {
        out[i] = seen ? numerator / denominator : null;
        continue;
      }
      var n = counts ? counts[i] : 1;
      var decay = n === 1 ? weight : Math.pow(weight, n);
      var share = n === 1 ? 1 : (1 - decay) / (1 - weight);
      numerator = decay * numerator + share * value;
      denominator = decay * denominator + share;
      seen = true;
      out[i] = numerator / denominator;
    }
    return out;
  }

  function format(value) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    var size = Math.abs(value);
    if (size !== 0 && (size >= 1e6 || size < 1e-4)) return value.toExponential(4);
    return String(parseFloat(value.toPrecision(6)));
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function darkScheme() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  function themeColor(name, fallback) {
    var value = getComputedStyle(document.body).getPropertyValue(name).trim();
    return value || fallback;
  }

  // Black and near-black curves (the eval loss, one palette colour) vanish on the dark scheme.
  function curveColor(color) {
    if (!COLOR.test(color)) color = "#0072B2";
    if (!darkScheme()) return color;
    var channels = [1, 3, 5].map(function (at) {
      var c = parseInt(color.substr(at, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    return luminance < 0.1 ? "#d4d4d4" : color;
  }

  function faint(color, alpha) {
    var r = parseInt(color.substr(1, 2), 16), g = parseInt(color.substr(3, 2), 16), b = parseInt(color.substr(5, 2), 16);
    return "rgba(" + r + "," + g + "," + b + "," + alpha + ")";
  }

  // The curves of a chart document: raw ones as logged (null = a gap), smoothed ones recomputed
  // from their source for the current weight, all aligned on the union of their steps
  // (undefined where a curve has no point: uPlot draws across it).
  function Curves(doc) {
    var steps = {};
    this.curves = [];
    this.bucketed = [];
    var self = this;
    doc.series.forEach(function (entry) {
      var color = COLOR.test(entry.color) ? entry.color : "#0072B2";
      var bucketed = entry.bucketed;
      var source = bucketed
        ? { x: bucketed.x, y: bucketed.mean, counts: bucketed.count, exact: bucketed.smoothed, weight: bucketed.weight }
        : { x: entry.x, y: entry.y, counts: null };
      if (bucketed) self.bucketed.push({ rows: entry.rows, buckets: bucketed.count.length, weight: bucketed.weight });
      if (entry.raw) {
        self.curves.push({ name: entry.smooth ? entry.name + " (raw)" : entry.name, color: color, x: entry.x,
                           y: entry.y, raw: true, smoothed: false, points: entry.points, main: !entry.smooth });
        entry.x.forEach(function (step) { steps[step] = true; });
      }
      if (entry.smooth) {
        self.curves.push({ name: entry.raw ? entry.name + " (smoothed)" : entry.name, color: color, x: source.x,
                           source: source, raw: false, smoothed: true, points: false, main: true });
        source.x.forEach(function (step) { steps[step] = true; });
      }
    });
    this.x = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var position = new Map();
    this.x.forEach(function (step, index) { position.set(step, index); });
    this.curves.forEach(function (curve) {
      curve.at = curve.x.map(function (step) { return position.get(step); });
    });
  }

  Curves.prototype.data = function (weight) {
    var length = this.x.length;
    var data = [this.x];
    this.curves.forEach(function (curve) {
      var column = new Array(length);
      var values = curve.y;
      if (curve.smoothed) {
        var source = curve.source;
        // A long run at the page's weight: the exact values, computed from every row.
        values = source.exact && Math.abs(weight - source.weight) < 1e-9 ? source.exact
          : smooth(source.y, weight, source.counts);
      }
      for (var i = 0; i < curve.at.length; i++) {
        var value = values[i];
        // A smoothed curve is drawn through its logged values only, as on the PNG: no gaps.
        if (curve.smoothed && (curve.source.y[i] === null || value === null)) continue;
        column[curve.at[i]] = value;
      }
      data.push(column);
    });
    return data;
  };

  Curves.prototype.positive = function () {
    return this.curves.every(function (curve) {
      var values = curve.smoothed ? curve.source.y : curve.y;
      return values.every(function (v) { return v === null || v > 0; });
    });
  };

  // The index of the point a curve shows for the cursor: uPlot's nearest point of that curve (a curve
  // logged at other steps, or one that ended earlier); without a cursor, the curve's last point.
  function pointOf(u, seriesIndex) {
    var column = u.data[seriesIndex];
    var idxs = u.cursor.idxs;
    if (u.cursor.idx !== null && u.cursor.idx !== undefined && idxs) {
      var index = idxs[seriesIndex];
      return index === null || index === undefined ? null : index;
    }
    for (var i = column.length - 1; i >= 0; i--) if (column[i] !== undefined && column[i] !== null) return i;
    return null;
  }

  function height(width) {
    return width < 600 ? 260 : 340;
  }

  function Chart(container, doc, image) {
    this.container = container;
    this.doc = doc;
    this.curves = new Curves(doc);
    var initial = Math.min(Math.max(Number(doc.smoothing) || 0, 0), WEIGHT_MAX);
    this.state = { weight: initial, logY: false, hidden: {}, range: null };
    this.image = image;
    this.build();
  }

  Chart.prototype.build = function () {
    var chart = this;
    var container = this.container;
    container.textContent = "";
    var controls = element("div", "td-chart__controls");
    var slider = element("label", "td-chart__smoothing");
    slider.appendChild(element("span", null, "Smoothing"));
    var range = element("input");
    range.type = "range";
    range.min = "0";
    range.max = String(WEIGHT_MAX);
    range.step = "0.01";
    range.value = String(this.state.weight);
    var shown = element("output", null, this.state.weight.toFixed(2));
    range.addEventListener("input", function () {
      chart.state.weight = Number(range.value);
      shown.textContent = chart.state.weight.toFixed(2);
      chart.plot.setData(chart.curves.data(chart.state.weight), false);
      chart.plot.redraw(false);
      chart.updateLegend();
    });
    slider.appendChild(range);
    slider.appendChild(shown);
    controls.appendChild(slider);

    var log = element("label", "td-chart__log");
    var box = element("input");
    box.type = "checkbox";
    box.checked = this.state.logY;
    var positive = this.curves.positive();
    box.disabled = !positive;
    if (!positive) log.title = "Some values are zero or negative: no log scale";
    box.addEventListener("change", function () {
      chart.remember();
      chart.state.logY = box.checked;
      chart.draw();
    });
    log.appendChild(box);
    log.appendChild(element("span", null, "Log scale"));
    controls.appendChild(log);

    var reset = element("button", "td-chart__reset", "Reset zoom");
    reset.type = "button";
    reset.addEventListener("click", function () { chart.resetZoom(); });
    controls.appendChild(reset);

    if (this.image && !container.hasAttribute("data-keep-image")) {
      var link = element("a", "td-chart__image", "Static image");
      link.href = this.image.currentSrc || this.image.src;
      // The hidden PNG's lightbox (Material's glightbox plugin), when the site has one.
      var zoom = this.image.closest("a.glightbox");
      if (zoom) {
        link.addEventListener("click", function (event) {
          event.preventDefault();
          zoom.click();
        });
      }
      controls.appendChild(link);
    }
    container.appendChild(controls);
    this.target = element("div", "td-chart__plot");
    this.target.setAttribute("role", "img");
    this.target.setAttribute("aria-label", "Interactive chart of " + this.doc.y + " by step; the legend below "
      + "lists each curve's value");
    container.appendChild(this.target);
    // Our own legend (not uPlot's, which is a <table>: pages and their tests read tables as data).
    this.legend = element("div", "td-chart__legend");
    container.appendChild(this.legend);
    var hint = "Drag across the chart to zoom, double-click or Reset zoom to undo; click a legend entry to hide its curve.";
    var long = this.curves.bucketed;
    if (long.length) {
      hint += " Long logs are thinned: each curve keeps the lowest and highest value of " + long[0].buckets.toLocaleString("en-US") +
        " stretches of its rows, and smoothing at another weight than " + long[0].weight +
        " averages each stretch first.";
    }
    container.appendChild(element("p", "td-chart__hint", hint));
    this.draw();
    if (window.ResizeObserver) {
      this.resizer = new ResizeObserver(function () { chart.resize(); });
      this.resizer.observe(container);
    }
  };

  Chart.prototype.remember = function () {
    var plot = this.plot;
    if (!plot) return;
    var hidden = {};
    plot.series.forEach(function (series, index) { if (index > 0 && !series.show) hidden[index] = true; });
    this.state.hidden = hidden;
    var x = plot.scales.x;
    var full = this.curves.x;
    var zoomed = full.length && (x.min > full[0] || x.max < full[full.length - 1]);
    this.state.range = zoomed ? [x.min, x.max] : null;
  };

  Chart.prototype.draw = function () {
    var chart = this;
    var state = this.state;
    if (this.plot) this.plot.destroy();
    var text = themeColor("--md-default-fg-color--light", "rgba(0,0,0,0.54)");
    var grid = themeColor("--md-default-fg-color--lightest", "rgba(0,0,0,0.07)");
    var series = [{ label: "step" }];
    var width = Math.max(this.target.clientWidth || this.container.clientWidth, 200);
    this.curves.curves.forEach(function (curve, index) {
      var color = curveColor(curve.color);
      // Raw values behind the smoothed line: fainter when there are more of them than pixels, or
      // their zigzag fills a band that hides the smoothed line drawn over it.
      var alpha = (darkScheme() ? 0.45 : 0.35) * (curve.x.length > width ? 0.6 : 1);
      series.push({
        label: curve.name,
        stroke: curve.raw && !curve.main ? faint(color, alpha) : color,
        width: curve.main ? (curve.points ? 1.5 : 2.2) : 1,
        show: !state.hidden[index + 1],
        spanGaps: false,
        points: { show: curve.points, size: 5, fill: color },
      });
    });
    var options = {
      width: width,
      height: height(width),
      series: series,
      scales: { x: { time: false }, y: { distr: state.logY ? 3 : 1 } },
      axes: [
        { label: "Step", stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        { label: this.doc.y, stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
          size: 60 },
      ],
      cursor: { drag: { x: true, y: false }, focus: { prox: 24 } },
      focus: { alpha: 0.35 },
      legend: { show: false },
      hooks: {
        setCursor: [function () { chart.updateLegend(); }],
        setSeries: [function () { chart.updateLegend(); }],
      },
    };
    this.plot = new uPlot(options, this.curves.data(state.weight), this.target);
    if (state.range) this.plot.setScale("x", { min: state.range[0], max: state.range[1] });
    this.buildLegend();
  };

  // One entry per curve: a button (click or Enter hides and shows the curve) with its colour, name
  // and the value at the cursor's step; the first entry is the step itself.
  Chart.prototype.buildLegend = function () {
    var chart = this;
    var plot = this.plot;
    this.legend.textContent = "";
    this.entries = [];
    var step = element("div", "td-chart__entry td-chart__entry--step");
    step.appendChild(element("span", "td-chart__name", "step"));
    var stepValue = element("span", "td-chart__value", "–");
    step.appendChild(stepValue);
    this.legend.appendChild(step);
    this.entries.push({ value: stepValue });
    plot.series.forEach(function (series, index) {
      if (index === 0) return;
      var entry = element("button", "td-chart__entry");
      entry.type = "button";
      var marker = element("span", "td-chart__marker");
      marker.style.background = series.stroke(plot, index);
      entry.appendChild(marker);
      entry.appendChild(element("span", "td-chart__name", series.label));
      var value = element("span", "td-chart__value", "–");
      entry.appendChild(value);
      entry.addEventListener("click", function () {
        plot.setSeries(index, { show: !plot.series[index].show });
      });
      chart.legend.appendChild(entry);
      chart.entries.push({ button: entry, value: value });
    });
    this.updateLegend();
  };

  Chart.prototype.updateLegend = function () {
    var plot = this.plot;
    if (!plot || !this.entries) return;
    var steps = plot.data[0];
    var cursor = plot.cursor.idx;
    var hovering = cursor !== null && cursor !== undefined;
    this.entries[0].value.textContent = hovering ? String(steps[cursor]) : "–";
    for (var i = 1; i < this.entries.length; i++) {
      var entry = this.entries[i];
      var shown = plot.series[i].show;
      entry.button.setAttribute("aria-pressed", shown ? "true" : "false");
      entry.button.classList.toggle("td-chart__entry--off", !shown);
      var index = pointOf(plot, i);
      var text = index === null ? "–" : format(plot.data[i][index]);
      if (index !== null && (!hovering || steps[index] !== steps[cursor])) text += " (step " + steps[index] + ")";
      entry.value.textContent = text;
    }
  };

  Chart.prototype.resetZoom = function () {
    var x = this.curves.x;
    if (x.length) this.plot.setScale("x", { min: x[0], max: x[x.length - 1] });
  };

  Chart.prototype.resize = function () {
    var width = Math.max(this.target.clientWidth, 200);
    if (this.plot && Math.abs(this.plot.width - width) > 1) this.plot.setSize({ width: width, height: height(width) });
  };

  // The image a chart stands for: the one in the element just before it (the PNG's paragraph).
  function imageBefore(container) {
    var before = container.previousElementSibling;
    return before ? before.querySelector("img") : null;
  }

  function start(container) {
    if (container.getAttribute("data-td-state")) return;
    container.setAttribute("data-td-state", "loading");
    var image = imageBefore(container);
    var base = image ? image.currentSrc || image.src : document.baseURI;
    var url = new URL(container.getAttribute("data-chart") || "", base);
    fetch(url.href)
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (doc) {
        if (!doc || !Array.isArray(doc.series) || !doc.series.length) throw new Error("no curve");
        container.hidden = false;
        var chart = new Chart(container, doc, image);
        charts.push(chart);
        if (image && !container.hasAttribute("data-keep-image")) container.previousElementSibling.hidden = true;
        container.setAttribute("data-td-state", "drawn");
        container.traindocsChart = chart;
      })
      .catch(function () {
        // Offline from file:// or a missing file: the PNG stays, which is the page without JavaScript.
        container.setAttribute("data-td-state", "failed");
      });
  }

  function startAll() {
    if (typeof uPlot === "undefined") return;
    charts = charts.filter(function (chart) { return document.body.contains(chart.container); });
    document.querySelectorAll("div.td-chart[data-chart]").forEach(start);
  }

  // Material's palette toggle: redraw with the new scheme's text, grid and curve colours.
  new MutationObserver(function () {
    charts.forEach(function (chart) { chart.remember(); chart.draw(); });
  }).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });

  // For tests and the curious: the EMA, the number format and the page's charts in page order.
  window.traindocsCharts = {
    smooth: smooth,
    format: format,
    charts: function () {
      return Array.prototype.map.call(document.querySelectorAll("div.td-chart"), function (container) {
        return container.traindocsChart;
      }).filter(Boolean);
    },
  };

  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(startAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startAll);
  } else {
    startAll();
  }
})();
