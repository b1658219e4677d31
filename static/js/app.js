// Theme toggle (dark by default, choice remembered) and small progressive enhancements.
(function () {
  function currentTheme() {
    return document.documentElement.getAttribute("data-theme") || "dark";
  }
  function syncToggle() {
    var button = document.getElementById("theme-toggle");
    if (button) button.setAttribute("aria-pressed", currentTheme() === "light" ? "true" : "false");
  }
  function setTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    try { localStorage.setItem("theme", theme); } catch (e) { /* private mode */ }
    syncToggle();
  }
  // The inline script in <head> applied a remembered theme before paint; reflect it on the button.
  syncToggle();

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("#theme-toggle");
    if (!toggle) return;
    event.preventDefault();
    setTheme(currentTheme() === "dark" ? "light" : "dark");
  });
  // The clipboard API exists only on https or localhost; elsewhere select the text and copy that.
  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (!copy) return;
    var source = document.querySelector(copy.dataset.copy);
    if (!source) return;
    var done = function () { copy.textContent = "Copied"; };
    var selectAndCopy = function () {
      window.getSelection().selectAllChildren(source);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the text stays selected */ }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(done, selectAndCopy);
    } else {
      selectAndCopy();
    }
  });

  // Destructive plain forms ask first: <form data-confirm="Revoke …?">.
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Back/forward restores htmx's snapshot of the page, taken after the user had already typed
  // the next search; put the filter fields back in step with the restored URL.
  document.addEventListener("htmx:historyRestore", function () {
    var params = new URLSearchParams(window.location.search);
    document.querySelectorAll("form.filters [name]").forEach(function (field) {
      field.value = params.get(field.name) || "";
    });
  });

  // A fragment request whose session has expired is redirected to the login page: load that page
  // whole instead of swapping a login form into the middle of a table.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var loginUrl = document.body.dataset.loginUrl;
    var responseUrl = event.detail.xhr && event.detail.xhr.responseURL;
    if (!loginUrl || !responseUrl) return;
    if (new URL(responseUrl, window.location.href).pathname === loginUrl) {
      event.detail.shouldSwap = false;
      window.location.assign(responseUrl);
    }
  });
})();
