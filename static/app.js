// dealdesk web app: small progressive enhancements over server-rendered pages.
// The scripts call the JSON API with the session cookie and the page's CSRF token.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // An API error answer ({code, message}) for the user: in a language other than English the
  // page's own sentence for the code comes first, then the API's (English) detail.
  function errorText(body, fallback) {
    const detail = body.message || fallback;
    if (document.documentElement.lang === "en") return detail;
    const key = "err" + String(body.code || "failed").replace(/(^|_)(\w)/g, (_, __, c) => c.toUpperCase());
    const summary = document.body.dataset[key] || document.body.dataset.errFailed;
    return detail ? summary + " " + detail : summary;
  }

  async function getJson(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(errorText(body, r.statusText));
    return body;
  }

  // A status in the page's language, from the element's data-l-<status> attributes.
  const statusLabel = (el, status) =>
    el.dataset["l" + status[0].toUpperCase() + status.slice(1)] || status;

  // Upload with drag and drop and a progress bar (XHR: fetch has no upload progress).
  function setupUpload() {
    const form = $("#upload-form");
    if (!form) return;
    const box = $("#upload");
    const input = $("#file");
    const drop = $("#drop");
    const name = $("#file-name");
    const bar = $("#upload-progress");
    const status = $("#upload-status");
    const show = () => { name.textContent = input.files[0] ? input.files[0].name : ""; };
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => {
      ev.preventDefault(); drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, (ev) => {
      ev.preventDefault(); drop.classList.remove("over");
    }));
    drop.addEventListener("drop", (ev) => {
      if (ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; show(); }
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const file = input.files[0];
      if (!file) { status.textContent = box.dataset.msgPick; return; }
      const data = new FormData();
      const title = $("#title").value.trim();
      if (title) data.append("title", title);
      const date = $("#call_date").value;
      if (date) data.append("call_date", date);
      data.append("language", $("#language").value);
      data.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/calls");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false; bar.value = 0;
      status.textContent = box.dataset.msgUploading;
      $("#upload-button").disabled = true;
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status === 200 || xhr.status === 202) {
          bar.value = 100;
          window.location.href = "/app/calls/" + body.call.id;
        } else {
          status.textContent = box.dataset.msgFailed + ": " + errorText(body, xhr.statusText);
          status.classList.add("error");
          $("#upload-button").disabled = false;
        }
      };
      xhr.onerror = () => {
        status.textContent = box.dataset.msgFailed;
        status.classList.add("error");
        $("#upload-button").disabled = false;
      };
      xhr.send(data);
    });
  }

  // Live progress of a call or job being processed: poll its JSON (GET /calls/{id} or
  // /jobs/{id}), reload when done.
  function setupProgress() {
    const card = $("#progress-card");
    if (!card) return;
    const source = card.dataset.poll;
    const bar = $("#job-progress");
    const status = $("#job-status");
    const tick = async () => {
      try {
        const call = await getJson(source);
        call.status = call.status || call.state;
        bar.value = call.progress;
        const label = $("#call-status");
        if (call.status === "done") {
          status.textContent = card.dataset.msgDone;
          window.location.reload();
          return;
        }
        if (call.status === "failed") {
          status.textContent = card.dataset.msgFailed + ": " + (call.error || "");
          status.classList.add("error");
          label.className = "badge failed";
          return;
        }
        label.textContent = statusLabel(card, call.status);
        label.className = "badge " + call.status;
        status.textContent = label.textContent + " · " + call.progress + "%";
        card.dataset.state = call.status;
      } catch (e) {
        status.textContent = e.message;
      }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 500);
  }

  // Transcript: select a line to play from it; the line being played is highlighted.
  function setupPlayer() {
    const player = $("#player");
    const lines = $$("#transcript li");
    const seek = (ms) => {
      if (!player) return;
      player.currentTime = ms / 1000;
      player.play().catch(() => { /* autoplay may be refused */ });
    };
    lines.forEach((li) => {
      li.addEventListener("click", () => seek(+li.dataset.start));
      li.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); seek(+li.dataset.start); }
      });
    });
    $$("button.seek").forEach((b) => b.addEventListener("click", () => {
      seek(+b.dataset.start);
      const ms = +b.dataset.start;
      const line = lines.find((li) => +li.dataset.start <= ms && ms < +li.dataset.end);
      if (line) line.scrollIntoView({ block: "center" });
    }));
    if (!player) return;
    let current = null;
    player.addEventListener("timeupdate", () => {
      const ms = player.currentTime * 1000;
      const line = lines.find((li) => +li.dataset.start <= ms && ms < +li.dataset.end);
      if (line === current) return;
      if (current) current.classList.remove("current");
      current = line || null;
      if (current) {
        current.classList.add("current");
        current.scrollIntoView({ block: "nearest" });
      }
    });
  }

  // Review dialogs (override needs a reason and a replacement; reject a reason).
  function setupDialogs() {
    $$("button.open-dialog").forEach((b) => b.addEventListener("click", () => {
      const d = document.getElementById(b.dataset.dialog);
      if (d) d.showModal();
    }));
    $$("button.close-dialog").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  }

  // The calls list updates the status of calls still being processed, in place (no reload:
  // the upload form above may be in use).
  function setupCallList() {
    const table = $("#call-list");
    if (!table || !$$("tr[data-busy]", table).length) return;
    const tick = async () => {
      try {
        const calls = await getJson("/calls");
        calls.forEach((c) => {
          const row = $('tr[data-call="' + c.id + '"][data-busy]', table);
          if (!row) return;
          const badge = $(".badge", row);
          badge.className = "badge " + c.status;
          badge.textContent = statusLabel(table, c.status);
          const pct = $(".pct", row);
          if (["queued", "running"].includes(c.status)) {
            if (pct) pct.textContent = c.progress + "%";
          } else {
            if (pct) pct.remove();
            delete row.dataset.busy;
          }
        });
      } catch (_) { /* try again */ }
      if ($$("tr[data-busy]", table).length) setTimeout(tick, 2000);
    };
    setTimeout(tick, 2000);
  }

  // Dashboard: an admin re-enables a kind the circuit breaker switched to manual
  // (POST /review/breakers/{kind}/reset), then the page reloads.
  function setupBreakerReset() {
    const box = $("#breakers");
    if (!box) return;
    $$("button.reset-breaker", box).forEach((b) => b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const r = await fetch("/review/breakers/" + encodeURIComponent(b.dataset.kind) + "/reset", {
          method: "POST", credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        });
        const body = await r.json().catch(() => ({}));
        if (!r.ok) throw new Error(errorText(body, r.statusText));
        window.location.reload();
      } catch (e) {
        const status = $("#breaker-status");
        status.textContent = box.dataset.msgFailed + ": " + e.message;
        status.classList.add("error");
        b.disabled = false;
      }
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupUpload();
    setupProgress();
    setupPlayer();
    setupDialogs();
    setupCallList();
    setupBreakerReset();
  });
})();

// Call page: forms that send JSON to the API (speaker labels; accept / edit / reject of a
// commitment or objection), then reload the page to show the result. The edit and reject
// dialogs open and close through the review dialogs' buttons above (setupDialogs).
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // The JSON body of an .api-form, by its data-body.
  function body(form) {
    const reason = form.elements.reason ? form.elements.reason.value.trim() : "";
    switch (form.dataset.body) {
      case "speakers": {
        const map = {};
        form.querySelectorAll("select").forEach((s) => { map[s.name] = s.value || null; });
        return map;
      }
      case "approve":
        return { action: "approve" };
      case "reject":
        return { action: "reject", reason };
      case "override": {
        // The AI's output with the edited fields replaced (an empty field clears it).
        const replacement = JSON.parse(form.dataset.output || "{}");
        form.querySelectorAll(".field").forEach((f) => {
          replacement[f.name] = f.value.trim() || null;
        });
        return { action: "override", replacement, reason };
      }
      default:
        throw new Error("unknown form " + form.dataset.body);
    }
  }

  async function send(form) {
    const error = form.querySelector(".form-error");
    const buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach((b) => { b.disabled = true; });
    if (error) error.textContent = "";
    try {
      const r = await fetch(form.dataset.url, {
        method: form.dataset.method || "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body(form)),
      });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(errorText(answer, r.statusText));
      window.location.reload();
    } catch (e) {
      if (error) error.textContent = e.message;
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.api-form").forEach((form) => form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      send(form);
    }));
  });
})();

// Bid team draft editing (wbids): an opened section's edit box gets the focus, Ctrl/Cmd+Enter
// saves, and leaving the page with unsaved edits asks first.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("draft-edit");
    if (!form) return;
    let dirty = false;
    document.querySelectorAll(".edit-section").forEach((details) => {
      const box = details.querySelector("textarea");
      details.addEventListener("toggle", () => { if (details.open && box) box.focus(); });
      if (!box) return;
      box.addEventListener("input", () => { dirty = true; });
      box.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          form.requestSubmit();
        }
      });
    });
    form.addEventListener("submit", () => { dirty = false; });
    window.addEventListener("beforeunload", (e) => {
      if (dirty) { e.preventDefault(); e.returnValue = ""; }
    });
  });
})();

// Bar widths come from data-width (percent): the Content-Security-Policy allows no inline
// style attributes, but a script may set an element's style.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-width]").forEach((el) => {
      const pct = Number(el.dataset.width);
      if (Number.isFinite(pct)) el.style.width = Math.min(100, Math.max(0, pct)) + "%";
    });
  });
})();
