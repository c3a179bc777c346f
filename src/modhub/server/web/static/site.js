// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(target.textContent).then(function () {
        button.textContent = "Copied";
        button.classList.add("done");
      }, function () {
        button.textContent = "Press Ctrl+C";
        var range = document.createRange();
        range.selectNodeContents(target);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      });
      window.setTimeout(function () {
        button.textContent = "Copy";
        button.classList.remove("done");
      }, 2000);
    });
  });

  // Shorter, shareable URLs: leave empty fields and defaults out of the query string.
  document.querySelectorAll("form[role=search]").forEach(function (form) {
    form.addEventListener("formdata", function (event) {
      var data = event.formData;
      Array.from(data.keys()).forEach(function (key) {
        var control = document.querySelector("[name='" + key + "'][form='" + form.id + "']") || form.elements[key];
        var fallback = control && control.getAttribute ? control.getAttribute("data-default") : null;
        var value = data.get(key);
        if (value === "" || (fallback !== null && value === fallback)) { data.delete(key); }
      });
    });
  });

  // Filters apply as soon as one changes; the "Apply" button stays for keyboards and no-JS.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (form) {
        if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
      }
    });
  });
})();
