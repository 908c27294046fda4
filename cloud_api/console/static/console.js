// The review console's only script: refresh the queue, and keyboard shortcuts. No libraries.
(function () {
  "use strict";
  var page = document.body.dataset.page;

  function typing(event) {
    var tag = event.target.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || event.ctrlKey || event.metaKey || event.altKey;
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (form) { form.requestSubmit(); }
  }

  function go(url) { if (url) { window.location.href = url; } }

  if (page === "queue") {
    var box = document.getElementById("queue");
    var selected = 0;
    var rows = function () { return Array.prototype.slice.call(box.querySelectorAll("tr.item")); };
    var mark = function () {
      var all = rows();
      if (selected >= all.length) { selected = Math.max(all.length - 1, 0); }
      all.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    };
    box.addEventListener("click", function (event) {
      var row = event.target.closest("tr.item");
      if (row && event.target.tagName !== "A") { go(row.dataset.url); }
    });
    // "Live": the rows are fetched again every 5 s; a lost session sends the reviewer to the login page.
    var refresh = function () {
      fetch(box.dataset.rows, { headers: { "X-Console-Fetch": "1" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { go("/console/login?next=/console/queue"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            box.innerHTML = html;
            mark();
            document.getElementById("refreshed").textContent = "refreshed " + new Date().toLocaleTimeString();
          }
        })
        .catch(function () { /* the next round tries again */ });
    };
    window.setInterval(refresh, 5000);
    mark();
    document.addEventListener("keydown", function (event) {
      if (typing(event)) { return; }
      var all = rows();
      if (event.key === "j") { selected = Math.min(selected + 1, all.length - 1); mark(); }
      else if (event.key === "k") { selected = Math.max(selected - 1, 0); mark(); }
      else if (event.key === "Enter" && all[selected]) { go(all[selected].dataset.url); }
    });
    return;
  }

  var pager = document.querySelector(".pager");
  document.addEventListener("keydown", function (event) {
    if (typing(event)) { return; }
    if (event.key === "c") { submit("confirm-form"); }
    else if (event.key === "v") { submit("void-form"); }
    else if (event.key === "j" && pager) { go(pager.dataset.next); }
    else if (event.key === "k" && pager) { go(pager.dataset.prev); }
    else if (event.key === "q") { go("/console/queue"); }
    else if (/^[1-9]$/.test(event.key)) { submit("shopper-" + event.key); }
  });
}());
