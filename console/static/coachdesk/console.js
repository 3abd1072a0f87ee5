// Queue browser: "select all on this page" (delegated, so it survives htmx swaps).
document.addEventListener("change", (event) => {
  if (event.target.id !== "select-all") return;
  const form = event.target.closest("form");
  form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = event.target.checked; });
});

// Queue browser: a click anywhere on a row opens its item, as its link does. The link
// ([data-row-link], the item's id) stays the way in for the keyboard and screen readers;
// this only makes the rest of the row a mouse target. Clicks on the row's own controls
// (the selection checkbox and its cell, links, buttons) and a drag that selects text are
// left alone. Delegated, so rows swapped in by htmx work too.
const ROW_CONTROLS = "a, button, input, select, textarea, label, summary, td.select";

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  const row = event.target.closest("tr.row-link");
  if (!row || event.target.closest(ROW_CONTROLS)) return;
  if (String(window.getSelection() || "").trim()) return;
  const link = row.querySelector("a[data-row-link]");
  if (!link) return;
  if (event.ctrlKey || event.metaKey || event.shiftKey) {
    window.open(link.href, "_blank", "noopener");  // as a modified click on the link would
    return;
  }
  window.location.assign(link.href);
});
