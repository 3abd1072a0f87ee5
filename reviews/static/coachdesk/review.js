/* Coachdesk review screen: keyboard shortcuts, rubric scores by key, edit-in-place
 * corrections, time on item,
 * the hold countdown, drafts kept in the tab, and the Undo toast (hidden when its minute is
 * over, pressed with `u`; also on My queue and My recent decisions).
 *
 * Everything is delegated from `document`, so it keeps working after htmx swaps in the next
 * item; per-screen state is set up on load and again on every `htmx:load`.
 * The pages work without this file: every button is a real form submit.
 */
(function () {
  "use strict";

  var TYPING = "input, textarea, select, [contenteditable=''], [contenteditable='true']";
  var IDLE_MS = 10 * 60 * 1000; // stop renewing the hold after this long without activity
  var MAX_SECONDS = 86400;
  var started = {}; // item id -> ms when it was first shown in this tab
  var lastActivity = Date.now();

  function screen() {
    return document.querySelector("[data-review-screen]");
  }

  function isTyping(el) {
    // A radio button or checkbox takes no text: the shortcut keys still work on it.
    if (el && (el.type === "radio" || el.type === "checkbox")) return false;
    return !!(el && el.closest && el.closest(TYPING));
  }

  function draftKey(id) {
    return "coachdesk:draft:" + id;
  }

  // --- edit in place --------------------------------------------------------------------------

  function correctButton(s) {
    return s && s.querySelector("[data-correct-button]");
  }

  function enterEdit(s) {
    var area = s.querySelector("[data-correction]");
    if (!area) return;
    s.classList.add("editing");
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  function leaveEdit(s) {
    s.classList.remove("editing");
    var button = correctButton(s);
    if (button) button.focus();
  }

  // --- rubric scores ---------------------------------------------------------------------------
  // One criterion is highlighted at a time (`is-current`). Digits score it (1-5 on a scale,
  // 1 pass / 0 fail) and move the highlight to the next one; "[" and "]" move it; "-"
  // clears the score. Clicking in a criterion highlights it. The radio buttons stay the
  // source of truth: the form posts them like any other field.

  function criteria(s) {
    return s ? Array.prototype.slice.call(s.querySelectorAll("[data-rubric] [data-criterion]")) : [];
  }

  function currentCriterion(rows) {
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].classList.contains("is-current")) return i;
    }
    return 0;
  }

  function highlight(rows, index, quiet) {
    rows.forEach(function (row, i) {
      row.classList.toggle("is-current", i === index);
      if (i === index) row.setAttribute("aria-current", "step");
      else row.removeAttribute("aria-current");
    });
    if (!quiet && rows[index] && rows[index].scrollIntoView) {
      rows[index].scrollIntoView({ block: "nearest" });
    }
  }

  function firstToScore(rows) {
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].classList.contains("has-errors")) return i;
    }
    for (var j = 0; j < rows.length; j++) {
      var checked = rows[j].querySelector("input[type=radio]:checked");
      if (!checked || checked.value === "") return j;
    }
    return 0;
  }

  // Handles a rubric key; false when `key` is not one (or the screen has no rubric).
  function rubricKey(s, key) {
    if (!/^[0-9\[\]-]$/.test(key)) return false;
    var rows = criteria(s);
    if (!rows.length) return false;
    var i = currentCriterion(rows);
    if (key === "[" || key === "]") {
      highlight(rows, Math.max(0, Math.min(rows.length - 1, i + (key === "]" ? 1 : -1))));
      return true;
    }
    var radio = rows[i].querySelector('input[data-score-value="' + key + '"]');
    if (!radio) {
      showToast(rows[i].dataset.kind === "pass_fail"
        ? "Pass / fail: press 1 for pass, 0 for fail."
        : "Scale: press 1 to 5.");
      return true;
    }
    if (radio.disabled) return false;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    if (key !== "-") highlight(rows, Math.min(rows.length - 1, i + 1));
    return true;
  }

  // --- time on item -----------------------------------------------------------------------------

  function stampSeconds(form) {
    var s = form.closest("[data-review-screen]");
    var field = form.querySelector("[data-seconds-spent]");
    if (!s || !field || !started[s.dataset.item]) return;
    var seconds = Math.round((Date.now() - started[s.dataset.item]) / 1000);
    field.value = String(Math.max(0, Math.min(MAX_SECONDS, seconds)));
  }

  // --- drafts (so a lost hold or a closed tab loses nothing) ------------------------------------

  function saveDraft(s) {
    var draft = {};
    s.querySelectorAll("[data-draft-field]").forEach(function (el) {
      draft[el.name] = el.value;
    });
    try {
      sessionStorage.setItem(draftKey(s.dataset.item), JSON.stringify(draft));
    } catch (e) { /* storage full or disabled: nothing to do */ }
  }

  function loadDraft(id) {
    try {
      return JSON.parse(sessionStorage.getItem(draftKey(id)) || "null");
    } catch (e) {
      return null;
    }
  }

  function dropDraft(id) {
    try {
      sessionStorage.removeItem(draftKey(id));
    } catch (e) { /* ignore */ }
  }

  function offerDraft(s) {
    var offer = s.querySelector("[data-draft-restore]");
    if (!offer || !s.hasAttribute("data-fresh")) return;
    var draft = loadDraft(s.dataset.item);
    if (!draft) return;
    var differs = false;
    s.querySelectorAll("[data-draft-field]").forEach(function (el) {
      if (draft[el.name] !== undefined && draft[el.name] !== el.value) differs = true;
    });
    if (differs) offer.hidden = false;
  }

  function applyDraft(s) {
    var draft = loadDraft(s.dataset.item) || {};
    s.querySelectorAll("[data-draft-field]").forEach(function (el) {
      if (draft[el.name] !== undefined) el.value = draft[el.name];
    });
    var area = s.querySelector("[data-correction]");
    var original = s.querySelector("[data-original]");
    if (area && original && area.value.replace(/\r\n/g, "\n") !== original.textContent) {
      enterEdit(s);
      if (window.htmx) htmx.trigger(area, "change");
    }
    s.querySelector("[data-draft-restore]").hidden = true;
  }

  // --- the hold countdown and the undo window -------------------------------------------------

  // Milliseconds left until the epoch second in `el.dataset[key]`, by the server's clock
  // (`data-server-now` when the element was rendered).
  function left(el, key) {
    if (!el.dataset.skew) {
      el.dataset.skew = String(Number(el.dataset.serverNow) * 1000 - Date.now());
    }
    return Number(el.dataset[key]) * 1000 - (Date.now() + Number(el.dataset.skew));
  }

  function tick() {
    document.querySelectorAll("[data-undo-until]").forEach(function (el) {
      if (left(el, "undoUntil") <= 0) el.hidden = true;
    });
    document.querySelectorAll("[data-lease-expires]").forEach(function (el) {
      var seconds = Math.max(0, Math.round(left(el, "leaseExpires") / 1000));
      var m = Math.floor(seconds / 60);
      var sec = seconds % 60;
      el.textContent = seconds > 0 ? m + ":" + (sec < 10 ? "0" : "") + sec + " left" : "hold ended";
      el.classList.toggle("is-warn", seconds > 0 && seconds < 120);
      el.classList.toggle("is-over", seconds === 0);
    });
  }

  // --- setup per screen -----------------------------------------------------------------------

  function init(root) {
    var s = root && root.matches && root.matches("[data-review-screen]")
      ? root
      : (root && root.querySelector && root.querySelector("[data-review-screen]"));
    if (!s) return;
    if (s.dataset.decided) dropDraft(s.dataset.decided);
    if (s.dataset.item && !started[s.dataset.item]) started[s.dataset.item] = Date.now();
    var rows = criteria(s);
    if (rows.length) highlight(rows, firstToScore(rows), true);
    offerDraft(s);
    tick();
  }

  function focusScreen(root) {
    var heading = root && root.querySelector && root.querySelector("[data-focus-on-load]");
    if (heading) heading.focus({ preventScroll: true });
  }

  function showToast(text) {
    var toast = document.getElementById("review-toast");
    if (!toast) {
      toast = document.createElement("p");
      toast.id = "review-toast";
      toast.className = "toast";
      toast.setAttribute("role", "alert");
      document.body.appendChild(toast);
    }
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(function () { toast.hidden = true; }, 8000);
  }

  function undoButton() {
    var buttons = document.querySelectorAll("[data-undo-button]");
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i].disabled && !buttons[i].closest("[hidden]")) return buttons[i];
    }
    return null;
  }

  function toggleShortcuts(force) {
    var dialog = document.getElementById("shortcuts");
    if (!dialog || !dialog.showModal) return false;
    var open = force === undefined ? !dialog.open : force;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
    return true;
  }

  // --- events ---------------------------------------------------------------------------------

  document.addEventListener("keydown", function (e) {
    lastActivity = Date.now();
    var s = screen();
    if (e.key === "Escape") {
      var dialog = document.getElementById("shortcuts");
      if (dialog && dialog.open) return; // the dialog closes itself
      if (s && s.classList.contains("editing")) {
        e.preventDefault();
        leaveEdit(s);
      }
      return;
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      if (s && s.classList.contains("editing")) {
        var submit = correctButton(s);
        if (submit && !submit.disabled) {
          e.preventDefault();
          submit.click();
        }
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (e.key === "?") {
      if (toggleShortcuts()) e.preventDefault();
      return;
    }
    if (e.key === "u" && !e.shiftKey) {
      var undo = undoButton();
      if (undo) {
        e.preventDefault();
        undo.click();
      }
      return;
    }
    if (!s || e.key.length !== 1) return;
    if (rubricKey(s, e.key)) {
      e.preventDefault();
      return;
    }
    var button = s.querySelector('[data-verdict-key="' + e.key.toLowerCase() + '"]');
    if (!button || button.disabled || e.shiftKey) return;
    e.preventDefault();
    if (button.hasAttribute("data-correct-button") && !s.classList.contains("editing")) {
      enterEdit(s);
    } else {
      button.click();
    }
  });

  document.addEventListener("click", function (e) {
    lastActivity = Date.now();
    var s = e.target.closest && e.target.closest("[data-review-screen]");
    if (!s) return;
    var correct = e.target.closest("[data-correct-button]");
    if (correct && !s.classList.contains("editing")) {
      // The first "Correct" opens the editor; the second one submits the correction.
      e.preventDefault();
      enterEdit(s);
      return;
    }
    var criterion = e.target.closest("[data-rubric] [data-criterion]");
    if (criterion) highlight(criteria(s), criteria(s).indexOf(criterion));
    var verdict = e.target.closest("[data-verdict-key]");
    if (verdict && verdict.form) stampSeconds(verdict.form);
    if (e.target.closest("[data-draft-apply]")) applyDraft(s);
    var use = e.target.closest("[data-use-correction]");
    if (use) {
      var text = use.closest("article").querySelector("[data-correction-text]");
      var area = s.querySelector("[data-correction]");
      if (text && area) {
        area.value = text.textContent;
        enterEdit(s);
        if (window.htmx) htmx.trigger(area, "change");
      }
    }
  });

  // A fallback for submissions that did not come through a verdict button.
  document.addEventListener("submit", function (e) {
    if (e.target.matches && e.target.matches("[data-decision-form]")) stampSeconds(e.target);
  }, true);

  // A criterion scored after a refused decision no longer shows its error.
  document.addEventListener("change", function (e) {
    var row = e.target.closest && e.target.closest("[data-rubric] [data-criterion]");
    if (!row || e.target.value === "") return;
    row.classList.remove("has-errors");
    var group = row.querySelector("fieldset[aria-invalid]");
    if (group) group.removeAttribute("aria-invalid");
    row.querySelectorAll(".field-errors").forEach(function (el) { el.remove(); });
  });

  document.addEventListener("input", function (e) {
    lastActivity = Date.now();
    var s = e.target.closest && e.target.closest("[data-review-screen]");
    if (s && s.dataset.item && e.target.matches("[data-draft-field]")) saveDraft(s);
  });

  ["mousemove", "scroll", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { lastActivity = Date.now(); }, { passive: true });
  });

  document.addEventListener("htmx:confirm", function (e) {
    // Keep the hold only while someone is there: an abandoned tab lets the item go back.
    var form = e.target.closest && e.target.closest("[data-lease-form]");
    if (form && !e.detail.triggeringEvent && Date.now() - lastActivity > IDLE_MS) {
      e.preventDefault();
    }
  });

  document.addEventListener("htmx:load", function (e) {
    init(e.target);
    if (e.target.matches && e.target.matches("[data-review-screen]")) {
      // The next item was swapped in: start reading it from the top.
      window.scrollTo(0, 0);
      focusScreen(e.target);
    }
  });

  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr ? e.detail.xhr.status : 0;
    showToast(status === 404
      ? "This item is no longer available to you. Your text is still on the page."
      : status === 503
      ? "Coachdesk lost its database connection for a moment; nothing was saved. Your text is still on the page: send it again."
      : "Something went wrong (" + status + "). Your text is still on the page; try again.");
  });

  document.addEventListener("htmx:sendError", function () {
    showToast("Could not reach Coachdesk. Check your connection; your text is still on the page.");
  });

  function boot() {
    init(document.body);
    setInterval(tick, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
