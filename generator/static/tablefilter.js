// traindocs: a text box above each comparison table of the index that keeps only the rows
// holding every word typed (any column: name, phase, base model, numbers).
// The box is made with createElement and textContent only: no HTML is parsed.
(function () {
  "use strict";

  function tableAfter(marker) {
    var next = marker.nextElementSibling;
    if (!next) return null;
    return next.tagName === "TABLE" ? next : next.querySelector("table");
  }

  function attach(marker) {
    if (marker.dataset.traindocsFilter) return;
    var table = tableAfter(marker);
    if (!table || !table.tBodies.length) return;
    marker.dataset.traindocsFilter = "true";
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);

    var label = document.createElement("label");
    label.className = "traindocs-filter";
    var caption = document.createElement("span");
    caption.textContent = "Filter runs";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "name, phase, base model...";
    input.setAttribute("aria-label", "Filter the runs of this table");
    var count = document.createElement("span");
    count.className = "traindocs-filter__count";
    count.setAttribute("aria-live", "polite");
    label.appendChild(caption);
    label.appendChild(input);
    label.appendChild(count);
    marker.appendChild(label);

    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      count.textContent = words.length ? shown + " of " + rows.length + " runs" : "";
    });
  }

  function attachAll() {
    Array.prototype.forEach.call(document.querySelectorAll(".traindocs-index-table"), attach);
  }

  // Material's instant navigation replaces the page without a load event.
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(attachAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", attachAll);
  } else {
    attachAll();
  }
})();
