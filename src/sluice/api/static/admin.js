// The admin page's policy editor: preview, save or hand the policy back to the rules file
// through /api/admin/policy. sluice.js adds the CSRF token to these same-origin calls; every
// text from the server is shown with textContent (never as HTML).
(function () {
  "use strict";
  var form = document.getElementById("policy-form");
  if (!form) {
    return;
  }
  var text = document.getElementById("policy-yaml");
  var status = document.getElementById("policy-status");
  var table = document.getElementById("policy-preview");

  function element(tag, content, className) {
    var node = document.createElement(tag);
    if (content !== undefined) {
      node.textContent = content;
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function say(message, kind, problems) {
    status.replaceChildren();
    var box = element("div", undefined, "notice " + kind);
    box.appendChild(element("b", message));
    if (problems && problems.length) {
      var list = element("ul");
      problems.forEach(function (problem) {
        list.appendChild(element("li", problem));
      });
      box.appendChild(list);
    }
    status.appendChild(box);
  }

  function problemsOf(data) {
    var detail = data && data.detail;
    if (detail && detail.problems) {
      return detail.problems;
    }
    return [typeof detail === "string" ? detail : "the server refused the request"];
  }

  function showPreview(preview) {
    var body = table.querySelector("tbody");
    body.replaceChildren();
    table.querySelector("caption").textContent =
      "Of " + preview.deliveries + " deliveries to internal recipients (" + preview.messages +
      " messages) of the last " + preview.days + " days" +
      (preview.capped ? " (the newest messages only)" : "") +
      "; users' own rules come first, as in the gateway.";
    preview.rules.forEach(function (rule) {
      var row = element("tr");
      var does = rule.action + (rule.to ? " → " + rule.to : "") +
        (rule.mode === "audit" ? " (audit)" : "");
      row.appendChild(element("td", rule.name));
      row.appendChild(element("td", does));
      row.appendChild(element("td", String(rule.matched), "num"));
      row.appendChild(element("td", rule.notes.join("; "), "muted"));
      body.appendChild(row);
    });
    if (!preview.rules.length) {
      var empty = element("tr");
      var cell = element("td", "An empty policy: mail without a matching own rule stays mail.");
      cell.colSpan = 4;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    table.hidden = false;
  }

  function call(method, url, body) {
    var init = { method: method, headers: { Accept: "application/json" },
                 credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.json().then(function (data) {
        return { ok: response.ok, data: data };
      }, function () {
        return { ok: false, data: { detail: "HTTP " + response.status } };
      });
    });
  }

  function backToPage(notice) {
    window.location.assign("/admin?notice=" + encodeURIComponent(notice) + "#policy-heading");
  }

  var actions = {
    preview: function () {
      say("Checking…", "");
      return call("POST", "/api/admin/policy/preview", { rules_yaml: text.value })
        .then(function (result) {
          if (!result.ok) {
            table.hidden = true;
            say("Not valid — please fix:", "error", problemsOf(result.data));
            return;
          }
          say("Valid. Preview below; nothing saved yet.", "ok");
          showPreview(result.data.preview);
        });
    },
    save: function () {
      say("Saving…", "");
      return call("PUT", "/api/admin/policy", { rules_yaml: text.value })
        .then(function (result) {
          if (!result.ok) {
            say("Not saved — please fix:", "error", problemsOf(result.data));
            return;
          }
          backToPage("Policy saved; the gateway applies it within a few seconds.");
        });
    },
    restore: function () {
      if (!window.confirm("Drop the policy saved here and use the rules file's again?")) {
        return Promise.resolve();
      }
      return call("DELETE", "/api/admin/policy").then(function (result) {
        if (!result.ok) {
          say("Not changed:", "error", problemsOf(result.data));
          return;
        }
        backToPage("The rules file's policy is in force again.");
      });
    }
  };

  form.addEventListener("submit", function (event) {
    event.preventDefault();
  });
  form.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-policy]") : null;
    if (!button) {
      return;
    }
    var action = actions[button.getAttribute("data-policy")];
    button.disabled = true;
    action().catch(function (error) {
      say("The request failed: " + error, "error");
    }).then(function () {
      button.disabled = false;
    });
  });
})();
