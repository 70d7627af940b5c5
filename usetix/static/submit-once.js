// <form data-submit-once> sends one request. A double click would otherwise send a second
// POST while the first is under way, and the browser shows only the last answer: for the
// new-token form that answer is "already submitted", and the reveal of the token the first
// POST created is lost. (The server's one-time nonce still stops a second token.)
(function () {
  "use strict";
  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.submitted) {
        event.preventDefault();
        return;
      }
      form.dataset.submitted = "true";
    });
  });
  // Back to this page from the back/forward cache: the form may be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      delete form.dataset.submitted;
    });
  });
})();
