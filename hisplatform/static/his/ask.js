// The Ask page's keyboard and click behaviour; the page works without it (plain form posts).
// Loaded from our static files (CSP script-src 'self'), no inline handlers.
"use strict";

(function () {
  // Ctrl+Enter (Cmd+Enter on a Mac) in the question box asks, as the Ask button does.
  document.addEventListener("keydown", function (event) {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.hasAttribute("data-ctrl-enter")) return;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    event.preventDefault();
    if (box.form && box.reportValidity()) box.form.requestSubmit();
  });

  // A one-click question (history, suggestion) is put in the question box, so that the box says
  // what the answer below is for.
  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element ? event.target.closest("button[name='ask_again']") : null;
    const box = document.getElementById("question");
    if (button && box instanceof HTMLTextAreaElement) box.value = button.value;
  });
})();
