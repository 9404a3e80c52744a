// traindocs: click a column header of a table to sort its rows (again to reverse).
// Numbers sort as numbers ("2,668", "93.5%", "0.2598", "2e-05"); a cell holding an element with a
// data-sort attribute sorts by that number (a runtime shown as "2 h 5 min"); "n/a", "–" and empty cells
// go last in either direction.
(function () {
  "use strict";

  function cellValue(row, column) {
    var cell = row.children[column];
    var text = cell ? cell.textContent.trim() : "";
    var keyed = cell ? cell.querySelector("[data-sort]") : null;
    var key = keyed ? parseFloat(keyed.getAttribute("data-sort")) : NaN;
    var number = !isNaN(key) ? key : parseFloat(text.replace(/,/g, "").replace(/%$/, ""));
    var numeric = !isNaN(key) || (text !== "" && /^-?[\d.,]+(e[-+]?\d+)?%?$/i.test(text) && !isNaN(number));
    var missing = text === "" || text === "n/a" || text === "\u2013" || text === "-";
    return { text: text, number: numeric && !missing ? number : null, missing: missing };
  }

  function compare(a, b) {
    if (a.missing !== b.missing) return a.missing ? 1 : -1;
    if (a.number !== null && b.number !== null) return a.number - b.number;
    return a.text.localeCompare(b.text, undefined, { numeric: true });
  }

  function sortBy(table, header, column) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (x, y) {
      var order = compare(cellValue(x, column), cellValue(y, column));
      if (order === 0) return 0;
      var missingLast = cellValue(x, column).missing || cellValue(y, column).missing;
      return ascending || missingLast ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      other.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function enable(table) {
    if (!table.tHead || !table.tBodies.length || table.dataset.traindocsSortable) return;
    table.dataset.traindocsSortable = "true";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.tabIndex = 0;
      header.style.cursor = "pointer";
      header.title = "Sort by this column";
      header.addEventListener("click", function () { sortBy(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(table, header, column);
        }
      });
    });
  }

  function enableAll() {
    Array.prototype.forEach.call(document.querySelectorAll("article table"), enable);
  }

  // Material's instant navigation replaces the page without a load event.
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(enableAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enableAll);
  } else {
    enableAll();
  }
})();
