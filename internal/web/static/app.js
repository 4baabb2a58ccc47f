// Nodus UI script: upload progress, live document status and the streamed
// chat answer, the things a plain form cannot do. The CSP forbids inline
// script, so everything is wired here by element ids. User text is only
// ever set with textContent; HTML is only taken from this server's own
// fragment routes, which render it escaped.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // fragment fetches one of this server's HTML fragments as an element.
  function fragment(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    }).then(function (html) {
      var t = document.createElement("template");
      t.innerHTML = html.trim();
      return t.content.firstElementChild;
    });
  }

  // errorText reads the API's error envelope, or says what failed.
  function errorText(status, body) {
    try {
      var e = JSON.parse(body).error;
      if (e && e.message) return e.message;
    } catch (_) { /* not JSON */ }
    return status === 0 ? "The network failed: check the connection and try again." : "The server answered " + status + ". Try again.";
  }

  // ---- Knowledge base: uploads and live status -------------------------
  var table = document.getElementById("documents");
  var kb = table && table.dataset.kb;

  function putRow(docID) {
    return fragment("/knowledge/" + kb + "/documents/" + docID + "/row").then(function (row) {
      var old = document.getElementById("doc-" + docID);
      if (old) old.replaceWith(row); else table.tBodies[0].prepend(row);
      var none = document.getElementById("no-docs");
      if (none) none.remove();
    });
  }

  // seen is when each document last had an event. The stream reports the
  // documents it sees pending or processing when it polls; one that
  // finished between two polls gets no event, so rows left unfinished
  // and quiet are read again from the server.
  var seen = {}, checker = null;
  function check() {
    var rows = table.querySelectorAll('tr[data-status="pending"], tr[data-status="processing"]');
    if (!rows.length) { clearInterval(checker); checker = null; return; }
    rows.forEach(function (row) {
      var id = row.dataset.doc;
      if (Date.now() - (seen[id] || 0) > 1500) {
        seen[id] = Date.now();
        putRow(id).catch(function () { /* tried again next time */ });
      }
    });
  }

  var stream = null;
  function follow() {
    if (!kb) return;
    if (!checker) checker = setInterval(check, 1000);
    if (stream) return;
    stream = new EventSource("/api/v1/knowledge-bases/" + kb + "/documents/events");
    stream.addEventListener("document", function (ev) {
      var d = JSON.parse(ev.data);
      seen[d.id] = Date.now();
      var row = document.getElementById("doc-" + d.id);
      if (!row || row.dataset.status !== d.status || d.status === "completed" || d.status === "failed") {
        putRow(d.id).catch(function () { /* the next event retries */ });
        return;
      }
      var bar = row.querySelector("progress");
      if (bar) { bar.value = d.progress; bar.textContent = d.progress + "%"; }
    });
    stream.addEventListener("deleted", function (ev) {
      var row = document.getElementById("doc-" + JSON.parse(ev.data).id);
      if (row) row.remove();
    });
    stream.addEventListener("end", function (ev) {
      stream.close();
      stream = null;
      // A stream that ran out of time while documents still index is
      // opened again; one that finished is done.
      if (JSON.parse(ev.data).reason === "lifetime") follow();
    });
  }
  if (table && table.dataset.follow) follow();

  function uploadOne(file, list) {
    return new Promise(function (done) {
      var li = el("li");
      var name = el("span", "name", file.name);
      var bar = el("progress");
      bar.max = 100; bar.value = 0;
      bar.setAttribute("aria-label", "Uploading " + file.name);
      var state = el("span", "hint", "waiting");
      li.append(name, bar, state);
      list.append(li);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/knowledge-bases/" + kb + "/documents");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
        state.textContent = "uploading";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          bar.value = 100;
          state.textContent = "uploaded, processing";
          var id = JSON.parse(xhr.responseText).document.id;
          seen[id] = Date.now();
          putRow(id).then(follow, follow);
        } else {
          state.textContent = errorText(xhr.status, xhr.responseText);
          state.className = "error";
        }
        done();
      });
      xhr.addEventListener("error", function () {
        state.textContent = errorText(0, "");
        state.className = "error";
        done();
      });
      var body = new FormData();
      body.append("file", file, file.name);
      xhr.send(body);
    });
  }

  var up = document.getElementById("upload");
  if (up) {
    up.addEventListener("submit", function (e) {
      e.preventDefault();
      var input = up.querySelector("input[type=file]");
      var files = Array.prototype.slice.call(input.files);
      var list = document.getElementById("uploads");
      list.textContent = "";
      // One at a time: each gets the whole connection, and the bars fill
      // in order.
      files.reduce(function (p, f) { return p.then(function () { return uploadOne(f, list); }); }, Promise.resolve())
        .then(function () { input.value = ""; });
    });
  }

  // ---- Chat: a streamed answer -----------------------------------------
  var ask = document.getElementById("ask");
  if (!ask) return;
  var messages = document.getElementById("messages");
  var question = document.getElementById("question");
  var status = document.getElementById("ask-status");
  var send = ask.querySelector("button[type=submit]");

  question.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ask.requestSubmit();
    }
  });

  ask.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = question.value.trim();
    if (!text || send.disabled) return;
    send.disabled = true;
    status.textContent = "Thinking…";
    var none = document.getElementById("no-messages");
    if (none) none.remove();
    var mine = el("li", "msg user");
    var mineBody = el("div", "body");
    mineBody.append(el("p", "text", text));
    mine.append(mineBody);
    var answer = el("li", "msg assistant");
    var body = el("div", "body");
    var out = el("p", "text");
    body.append(out);
    answer.append(body);
    messages.append(mine, answer);
    question.value = "";

    var conv = ask.dataset.conversation, msgID = "";
    function fail(msg) {
      answer.append(el("p", "error", msg));
      status.textContent = "";
    }
    function finish() {
      send.disabled = false;
      question.focus();
    }
    function swap() {
      if (!conv || !msgID) return Promise.resolve();
      return fragment("/chat/c/" + conv + "/m/" + msgID).then(function (li) {
        answer.replaceWith(li);
        answer = li;
      });
    }
    function onEvent(name, d) {
      if (name === "message_start") {
        conv = d.conversation_id; msgID = d.message_id;
        ask.dataset.conversation = conv;
        answer.id = "m-" + msgID;
        if (location.pathname !== "/chat/c/" + conv) history.replaceState(null, "", "/chat/c/" + conv);
        if (d.conversation_title) document.getElementById("conv-title").textContent = d.conversation_title;
        status.textContent = "Answering…";
      } else if (name === "message") {
        out.textContent += d.answer;
      } else if (name === "message_end") {
        status.textContent = "";
        return swap();
      } else if (name === "error") {
        fail(d.message || "The answer failed.");
        return swap();
      }
    }

    fetch("/api/v1/chatbots/" + ask.dataset.bot + "/chat", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRF-Token": csrf },
      body: JSON.stringify({ message: text, conversation_id: conv || undefined })
    }).then(function (r) {
      if (!r.ok || (r.headers.get("Content-Type") || "").indexOf("text/event-stream") !== 0) {
        return r.text().then(function (b) { fail(errorText(r.status, b)); });
      }
      var reader = r.body.getReader(), dec = new TextDecoder(), buf = "", chain = Promise.resolve();
      function pump() {
        return reader.read().then(function (res) {
          if (res.done) return chain;
          buf += dec.decode(res.value, { stream: true });
          var i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            var block = buf.slice(0, i); buf = buf.slice(i + 2);
            var name = "message", data = "";
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) name = line.slice(7);
              else if (line.indexOf("data: ") === 0) data += line.slice(6);
            });
            if (data) {
              var d = JSON.parse(data);
              chain = chain.then(onEvent.bind(null, name, d));
            }
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      fail(errorText(0, ""));
    }).then(finish);
  });
})();

// ---- Gateway keys: copy a new key's secret (gateway.go) ------------------
// A separate scope: the chat script above returns early on pages without
// a chat form.
(function () {
  "use strict";
  var copy = document.getElementById("copy-secret");
  if (!copy) return;
  var input = document.getElementById(copy.dataset.copy);
  var status = document.getElementById("copy-status");
  input.addEventListener("focus", function () { input.select(); });
  copy.addEventListener("click", function () {
    input.select();
    var done = function () { status.textContent = "Copied."; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        status.textContent = "Select the key and copy it with your keyboard.";
      });
    } else {
      status.textContent = "Select the key and copy it with your keyboard.";
    }
  });
})();

// Administration pages (admin_*.go): a Copy button for a revealed vault
// value, so it need not be selected by hand. The value is already on the
// page; copying sends it nowhere.
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-copy]") : null;
    if (!b || !navigator.clipboard) return;
    var src = document.getElementById(b.getAttribute("data-copy"));
    if (!src) return;
    navigator.clipboard.writeText(src.textContent).then(function () {
      b.textContent = "Copied";
    }, function () {
      b.textContent = "Copy failed: select the value instead";
    });
  });
})();

// Recordings (recordings.go): the upload form posts to the API with a
// progress line, then reloads the list; a recording's page seeks its
// player to a segment clicked (or to #t=SECONDS, a chat citation's link)
// and highlights the segment playing.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";
  var form = document.getElementById("rec-upload");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = form.querySelector("input[type=file]").files[0];
      var progress = document.getElementById("rec-progress");
      if (!file) return;
      if (file.size > Number(form.dataset.max)) {
        progress.textContent = "The file is larger than the upload limit.";
        progress.className = "error";
        return;
      }
      var body = new FormData();
      body.append("title", form.querySelector("input[name=title]").value);
      body.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/recordings");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable) progress.textContent = "Uploading: " + Math.round(100 * ev.loaded / ev.total) + "%";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          window.location.assign("/recordings/" + encodeURIComponent(JSON.parse(xhr.responseText).recording.id));
          return;
        }
        var msg = "The upload failed (" + xhr.status + ").";
        try { msg = JSON.parse(xhr.responseText).error.message; } catch (err) { /* keep the status */ }
        progress.textContent = msg;
        progress.className = "error";
      });
      xhr.addEventListener("error", function () {
        progress.textContent = "The upload failed: the server could not be reached.";
        progress.className = "error";
      });
      xhr.send(body);
    });
  }

  var player = document.getElementById("player");
  var list = document.getElementById("segments");
  if (!player) return;
  var items = list ? Array.prototype.slice.call(list.querySelectorAll("li[data-start]")) : [];
  function seek(t) {
    if (!isFinite(t) || t < 0) return;
    player.currentTime = t;
  }
  var m = /^#t=([0-9]+(?:\.[0-9]+)?)/.exec(window.location.hash);
  if (m) {
    var at = Number(m[1]);
    if (player.readyState >= 1) seek(at);
    else player.addEventListener("loadedmetadata", function () { seek(at); }, { once: true });
  }
  if (list) {
    list.addEventListener("click", function (ev) {
      var b = ev.target.closest ? ev.target.closest("button.seek") : null;
      if (!b) return;
      seek(Number(b.parentNode.dataset.start));
      player.play();
    });
  }
  var current = null;
  player.addEventListener("timeupdate", function () {
    var t = player.currentTime, found = null;
    for (var i = 0; i < items.length; i++) {
      if (t >= Number(items[i].dataset.start) && t < Number(items[i].dataset.end)) { found = items[i]; break; }
    }
    if (found === current) return;
    if (current) { current.classList.remove("playing"); current.removeAttribute("aria-current"); }
    if (found) {
      found.classList.add("playing");
      found.setAttribute("aria-current", "true");
      if (found.scrollIntoView) found.scrollIntoView({ block: "nearest" });
    }
    current = found;
  });
})();
