/* Coachdesk comparison screen: keyboard shortcuts (1 / 2 / t / b choose, s skips, ? shows
 * the list), time on screen, and keeping the hold only while someone is there.
 *
 * Delegated from `document`, so it keeps working after htmx swaps in the next comparison.
 * The page works without this file: every button is a real form submit.
 */
(function () {
  "use strict";

  var TYPING = "input, textarea, select, [contenteditable=''], [contenteditable='true']";
  var IDLE_MS = 10 * 60 * 1000;
  var MAX_SECONDS = 86400;
  var started = {}; // comparison id -> ms when first shown in this tab
  var lastActivity = Date.now();

  function screen() {
    return document.querySelector("[data-compare-screen]");
  }

  function stampSeconds(form) {
    var s = form.closest("[data-compare-screen]");
    var field = form.querySelector("[data-seconds-spent]");
    if (!s || !field || !started[s.dataset.comparison]) return;
    var seconds = Math.round((Date.now() - started[s.dataset.comparison]) / 1000);
    field.value = String(Math.max(0, Math.min(MAX_SECONDS, seconds)));
  }

  function init(root) {
    var s = root && root.matches && root.matches("[data-compare-screen]")
      ? root
      : (root && root.querySelector && root.querySelector("[data-compare-screen]"));
    if (s && s.dataset.comparison && !started[s.dataset.comparison]) {
      started[s.dataset.comparison] = Date.now();
    }
  }

  function toggleShortcuts() {
    var dialog = document.getElementById("shortcuts");
    if (!dialog || !dialog.showModal) return false;
    if (dialog.open) dialog.close(); else dialog.showModal();
    return true;
  }

  document.addEventListener("keydown", function (e) {
    lastActivity = Date.now();
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target && e.target.closest && e.target.closest(TYPING)) return;
    if (e.key === "?") {
      if (toggleShortcuts()) e.preventDefault();
      return;
    }
    var s = screen();
    if (!s || e.key.length !== 1 || e.shiftKey) return;
    var button = s.querySelector('[data-compare-key="' + e.key.toLowerCase() + '"]');
    if (!button || button.disabled) return;
    e.preventDefault();
    button.click();
  });

  document.addEventListener("click", function (e) {
    lastActivity = Date.now();
    var button = e.target.closest && e.target.closest("[data-compare-key]");
    if (button && button.form) stampSeconds(button.form);
  });

  ["mousemove", "scroll", "touchstart", "input"].forEach(function (name) {
    document.addEventListener(name, function () { lastActivity = Date.now(); }, { passive: true });
  });

  document.addEventListener("htmx:confirm", function (e) {
    // Renew the hold only while someone is there: an abandoned tab lets it go back.
    var form = e.target.closest && e.target.closest("[data-lease-form]");
    if (form && !e.detail.triggeringEvent && Date.now() - lastActivity > IDLE_MS) {
      e.preventDefault();
    }
  });

  document.addEventListener("htmx:load", function (e) {
    init(e.target);
    if (e.target.matches && e.target.matches("[data-compare-screen]")) {
      window.scrollTo(0, 0);
      var heading = e.target.querySelector("[data-focus-on-load]");
      if (heading) heading.focus({ preventScroll: true });
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document.body); });
  } else {
    init(document.body);
  }
})();
