// datamarket portal: live round status and uploads with progress (no framework, no external script).
(function () {
  "use strict";

  // Round status: refresh the fragment until the round is cleared or failed, then reload once.
  function poll(box) {
    if (box.querySelector("[data-final]")) { return; }  // already cleared or failed when the page was drawn
    var url = box.getAttribute("data-poll");
    var timer = setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          box.innerHTML = html;
          var st = box.querySelector("#round-status");
          if (st && st.getAttribute("data-final")) {
            clearInterval(timer);
            window.location.reload();
          }
        });
    }, 500);
  }

  // Upload: the size limit checked before sending, progress shown while the file goes up.
  function upload(form) {
    var limit = parseInt(form.getAttribute("data-max-bytes"), 10);
    var input = form.querySelector("input[type=file]");
    var bar = form.querySelector("progress");
    var err = form.querySelector("#upload-file-error");
    function fail(msg) {
      err.textContent = msg;
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      err.hidden = true;
      var file = input.files && input.files[0];
      if (!file) { fail("choose a file to upload"); return; }
      if (file.size > limit) { fail("the file has " + file.size + " bytes; the limit is " + limit); return; }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      bar.value = 0;
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = e.loaded / e.total; } };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status < 300 && body && body.redirect) { window.location.assign(body.redirect); return; }
        bar.hidden = true;
        if (body && body.errors) {
          var k = Object.keys(body.errors)[0];
          fail(body.errors[k]);
        } else if (body && body.detail) {
          fail(String(body.detail));
        } else {
          fail("upload failed (HTTP " + xhr.status + ")");
        }
      };
      xhr.onerror = function () { bar.hidden = true; fail("upload failed: the connection was lost"); };
      xhr.send(new FormData(form));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("form[data-max-bytes]").forEach(upload);
  });
})();
