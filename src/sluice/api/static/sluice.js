// Sluice's own page script: same-origin fetch() calls that change something carry the
// session's CSRF token (from <meta name="csrf-token">) in the X-CSRF-Token header.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var safe = { GET: true, HEAD: true, OPTIONS: true };
  var original = window.fetch.bind(window);

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  window.fetch = function (input, init) {
    init = init || {};
    var method = (init.method || (input && input.method) || "GET").toUpperCase();
    var url = typeof input === "string" ? input : input.url;
    if (token && !safe[method] && sameOrigin(url)) {
      var headers = new Headers(init.headers || (input && input.headers) || {});
      if (!headers.has("X-CSRF-Token")) {
        headers.set("X-CSRF-Token", token);
      }
      init.headers = headers;
    }
    return original(input, init);
  };

  window.sluice = { csrfToken: token };

  // <button data-confirm="Really?">: ask before submitting (no inline handlers under CSP).
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
