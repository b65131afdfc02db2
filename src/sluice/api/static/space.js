// The post page: mark read on opening, toggle read, react, comment (through the REST API),
// and load remote images only when the reader asks. The CSRF token comes from the page's
// <meta name="csrf-token"> (this script may run before sluice.js wraps fetch).
(function () {
  "use strict";
  var post = document.getElementById("post");
  if (!post) {
    return;
  }
  var id = post.getAttribute("data-post-id");
  var base = "/api/posts/" + encodeURIComponent(id);
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function call(method, path, body) {
    var init = { method: method, credentials: "same-origin",
                 headers: { "Accept": "application/json", "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          throw new Error(typeof data.detail === "string" ? data.detail :
                          "the server said " + response.status);
        });
      }
      return response.json();
    });
  }

  var readButton = document.getElementById("toggle-read");
  function showRead(read) {
    post.setAttribute("data-read", read ? "true" : "false");
    readButton.textContent = read ? "Mark unread" : "Mark read";
  }
  if (post.getAttribute("data-read") !== "true") {
    call("PUT", "/read").then(function () { showRead(true); }).catch(function () {});
  }
  readButton.addEventListener("click", function () {
    var read = post.getAttribute("data-read") === "true";
    call(read ? "DELETE" : "PUT", "/read").then(function (data) { showRead(data.read); });
  });

  document.querySelectorAll("button.reaction").forEach(function (button) {
    button.addEventListener("click", function () {
      var mine = button.getAttribute("aria-pressed") === "true";
      var emoji = button.getAttribute("data-emoji");
      call(mine ? "DELETE" : "PUT", "/reactions/" + encodeURIComponent(emoji))
        .then(function (data) {
          document.querySelectorAll("button.reaction").forEach(function (other) {
            var name = other.getAttribute("data-emoji");
            var found = data.reactions.filter(function (r) { return r.emoji === name; })[0];
            other.querySelector(".count").textContent = found ? String(found.count) : "";
            other.setAttribute("aria-pressed", found && found.mine ? "true" : "false");
            other.classList.toggle("mine", Boolean(found && found.mine));
          });
        });
    });
  });

  var sendButton = document.getElementById("send-to-me");
  var sendStatus = document.getElementById("send-to-me-status");
  if (sendButton) {
    sendButton.addEventListener("click", function () {
      sendButton.disabled = true;
      call("POST", "/send-to-me").then(function (data) {
        sendStatus.textContent = data.queued ? "On its way to your inbox." :
          "The original message is no longer stored.";
      }).catch(function (failure) {
        sendStatus.textContent = failure.message;
        sendButton.disabled = false;
      });
    });
  }

  var form = document.getElementById("comment-form");
  var error = document.getElementById("comment-error");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = form.querySelector("textarea").value;
    error.textContent = "";
    call("POST", "/comments", { body: text }).then(function (comment) {
      window.location.hash = "comment-" + comment.id;
      window.location.reload();
    }).catch(function (failure) { error.textContent = failure.message; });
  });

  var remote = document.querySelectorAll(".mail-body img[data-remote-src]");
  var showImages = document.getElementById("show-images");
  if (remote.length) {
    showImages.hidden = false;
    showImages.addEventListener("click", function () {
      remote.forEach(function (img) {
        var url = img.getAttribute("data-remote-src") || "";
        if (/^https?:\/\//i.test(url)) {
          img.setAttribute("src", url);
        }
      });
      showImages.hidden = true;
    });
  }
})();
