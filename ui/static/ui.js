// Shared by every UI page. htmx sends the CSRF token itself (hx-headers on
// <body>); here: filters that apply as soon as a choice changes.
(function () {
  "use strict";
  document.addEventListener("change", (e) => {
    const el = e.target;
    if (el.matches && el.matches("select[data-autosubmit]") && el.form) el.form.requestSubmit();
  });
})();
