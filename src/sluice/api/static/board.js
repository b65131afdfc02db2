// Actions of the feedback board through the REST API (sluice.js adds the CSRF header to
// same-origin fetch() calls). No inline handlers: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  function changeFeedback(form) {
    var error = form.querySelector(".error");
    var body = {
      status: form.elements.status.value,
      owner: form.elements.owner.value.trim()
    };
    error.textContent = "";
    return fetch("/api/feedback/" + encodeURIComponent(form.getAttribute("data-item")), {
      method: "PATCH",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body)
    }).then(function (response) {
      if (response.ok) {
        window.location.reload();
        return;
      }
      return response.json().then(function (data) {
        error.textContent = typeof data.detail === "string" ? data.detail : "not saved";
      }, function () {
        error.textContent = "not saved (" + response.status + ")";
      });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("feedback-change")) {
      event.preventDefault();
      changeFeedback(form);
    }
  });
})();
