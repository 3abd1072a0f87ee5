// Queue browser: "select all on this page" (delegated, so it survives htmx swaps).
document.addEventListener("change", (event) => {
  if (event.target.id !== "select-all") return;
  const form = event.target.closest("form");
  form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = event.target.checked; });
});
