// A confirmation step for destructive forms: <form data-confirm="Question?"> asks first.
// Once accepted, a hidden confirm field says so; without script the server asks instead.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      if (form.elements.confirm) form.elements.confirm.value = "yes";
    });
  });
})();
