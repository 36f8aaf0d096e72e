// The break-glass form: only the chosen scope's field is shown (one patient's id, or one care unit).
// Without this script both fields show, each under its own choice, and the server reads only the chosen one.
"use strict";

(function () {
  function showChosenScope(form) {
    const chosen = form.querySelector("input[data-scope-choice]:checked");
    form.querySelectorAll("[data-scope-field]").forEach(function (field) {
      field.hidden = !chosen || field.dataset.scopeField !== chosen.value;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("input[data-scope-choice]")) return;
      showChosenScope(form);
      form.addEventListener("change", function (event) {
        if (event.target.matches("input[data-scope-choice]")) showChosenScope(form);
      });
    });
  });
})();
