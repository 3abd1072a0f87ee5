/* The exports page's behaviour, as a static file: the Content-Security-Policy
 * (script-src 'self') blocks inline handlers such as onchange="…", so nothing on this page
 * may rely on one. The page works without this file too (a "Show" button, full posts).
 *
 * - A select marked data-autosubmit submits its form when it changes (the agent picker).
 * - A build form the server refused (400 invalid, 409 identical batch, 429 over the limit)
 *   comes back retargeted at the form with its messages: htmx does not swap 4xx answers by
 *   default, so they are let through here for those forms only. */
(function () {
  "use strict";
  var FORMS = ["#build_form", "#feedback_form"];

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    var status = xhr.status;
    if ((status === 400 || status === 409 || status === 429) &&
        FORMS.indexOf(xhr.getResponseHeader("HX-Retarget")) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
