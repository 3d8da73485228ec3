// fracta's web view: follows the control plane's event stream and swaps in the fragments the
// server renders (/ui/fleet, /ui/agents/NAME); actions call the REST API with the session cookie
// and the CSRF header. No page reloads; no markup is built from data here (text only).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="fracta-csrf"]').content;
  const $ = (id) => document.getElementById(id);
  const timings = (window.fractaTimings = []); // event -> screen, for bench/ui.py
  let selected = null; // the agent whose panel is open
  let peekOffset = null;
  let peekTimer = null;
  let pending = []; // events not yet on screen
  let busy = false;
  let again = false;
  let selectedDirty = false;

  function setLive(state, text) {
    const live = $("live");
    live.dataset.live = state;
    live.textContent = text;
  }

  async function get(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (r.status === 401) {
      setLive("ended", "session ended: run fracta ui again");
      throw new Error("unauthorized");
    }
    return r;
  }

  function parse(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  // Swap the fleet in row by row: unchanged rows stay as they are.
  function applyFleet(html) {
    const next = parse(html);
    const fleet = $("fleet");
    fleet.querySelector("#totals").replaceWith(next.querySelector("#totals"));
    fleet.querySelector(".problems").replaceWith(next.querySelector(".problems"));
    fleet.querySelector("#agent-names").replaceWith(next.querySelector("#agent-names"));
    const body = fleet.querySelector("#agents tbody");
    const fresh = Array.from(next.querySelector("#agents tbody").children);
    const old = new Map(Array.from(body.children).map((row) => [row.id || row.className, row]));
    fresh.forEach((row, i) => {
      const key = row.id || row.className;
      const have = old.get(key);
      let keep = row;
      if (have && have.outerHTML === row.outerHTML) keep = have;
      else if (have) have.replaceWith(row);
      old.delete(key);
      if (body.children[i] !== keep) body.insertBefore(keep, body.children[i] || null);
    });
    old.forEach((row) => row.remove());
    markSelected();
  }

  function markSelected() {
    document.querySelectorAll("#agents tr.agent").forEach((row) => {
      row.classList.toggle("selected", row.dataset.agent === selected);
    });
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        const took = pending;
        pending = [];
        const detailToo = selectedDirty;
        selectedDirty = false;
        const fleet = await (await get("/ui/fleet")).text();
        const detail = detailToo && selected ? await loadDetail(selected) : null;
        applyFleet(fleet);
        if (detail !== null) applyDetail(detail);
        const now = Date.now();
        for (const e of took) {
          if (e.ts) timings.push({ event: e.event, offset: e.offset, latency: now - Date.parse(e.ts) });
        }
        if (timings.length > 2000) timings.splice(0, timings.length - 2000);
      } while (again);
    } catch (err) {
      if (String(err.message) !== "unauthorized") setLive("error", "error: " + err.message);
    } finally {
      busy = false;
    }
  }

  function follow() {
    const cursor = document.body.dataset.cursor || "0";
    const source = new EventSource("/v1/events?named=false&since=" + encodeURIComponent(cursor));
    source.onopen = () => setLive("live", "live");
    source.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      pending.push(data);
      // Any event may change the open agent's view (a reader elsewhere changes its messages' delivery).
      if (selected) selectedDirty = true;
      refresh();
    };
    source.onerror = async () => {
      setLive("reconnecting", "reconnecting…");
      try {
        await get("/ui/fleet"); // 401 says the session is gone: the stream will not come back
      } catch (err) {
        if (String(err.message) === "unauthorized") source.close();
      }
    };
  }

  // --- one agent's panel -------------------------------------------------------------------

  async function loadDetail(name) {
    const r = await get("/ui/agents/" + encodeURIComponent(name));
    return r.text();
  }

  function applyDetail(html) {
    $("detail-body").replaceChildren(parse(html));
  }

  async function open(name) {
    selected = name;
    $("detail").hidden = false;
    $("action-result").replaceChildren();
    $("peek").textContent = "";
    $("send-to").value = name;
    markSelected();
    peekOffset = null;
    applyDetail(await loadDetail(name));
    clearTimeout(peekTimer);
    peek();
  }

  async function peek() {
    const name = selected;
    if (!name) return;
    const query = peekOffset === null ? "n=50" : "since=" + peekOffset;
    try {
      const r = await fetch("/v1/agents/" + encodeURIComponent(name) + "/peek?" + query, { credentials: "same-origin" });
      if (r.ok && name === selected) {
        const data = await r.json();
        peekOffset = data.offset;
        const pre = $("peek");
        for (const e of data.events) pre.append(document.createTextNode(e.text + "\n"));
        const lines = pre.textContent.split("\n");
        if (lines.length > 600) pre.textContent = lines.slice(-500).join("\n");
        pre.scrollTop = pre.scrollHeight;
      }
    } finally {
      if (name === selected) peekTimer = setTimeout(peek, 1000);
    }
  }

  // --- actions: the REST API, with the session cookie and the CSRF header ------------------------

  async function call(method, url, body) {
    const headers = { "X-Fracta-CSRF": csrf, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data };
  }

  function say(where, kind, ...parts) {
    const box = document.createElement("div");
    box.className = "say " + kind;
    for (const part of parts) {
      if (typeof part === "string") {
        const p = document.createElement("p");
        p.textContent = part;
        box.append(p);
      } else box.append(part);
    }
    where.replaceChildren(box);
    return box;
  }

  function button(text, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  function refusal(where, data) {
    const e = data.error || {};
    return say(where, "refused", e.message || "refused", e.hint ? "hint: " + e.hint : "");
  }

  async function previewMerge() {
    const name = selected;
    const where = $("action-result");
    const { ok, data } = await call("GET", "/v1/agents/" + encodeURIComponent(name) + "/merge/preview");
    if (!ok) return refusal(where, data);
    if (data.would === "conflict") {
      return say(where, "refused", `Merging ${data.branch} into ${data.into} would conflict; nothing was changed:`,
        data.conflicts.join("\n"), data.hint ? "hint: " + data.hint : "");
    }
    if (data.would === "refused") return say(where, "refused", data.refused, data.hint ? "hint: " + data.hint : "");
    if (data.would === "nothing") return say(where, "ok", `${data.branch} is already merged into ${data.into}.`);
    const how = data.would === "fast-forward" ? "a fast-forward" : "a merge commit";
    say(where, "confirm", `Merge ${data.branch} into ${data.into} (${how}, no conflicts)?`,
      button("Confirm merge", "primary", () => doMerge(name)), button("Cancel", "", () => where.replaceChildren()));
  }

  async function doMerge(name) {
    const where = $("action-result");
    const { ok, data } = await call("POST", "/v1/agents/" + encodeURIComponent(name) + "/merge", {});
    if (!ok) return refusal(where, data);
    say(where, "ok", `Merged ${data.branch} into ${data.into} at ${data.sha.slice(0, 10)}` +
      (data.fast_forward ? " (fast-forward)." : data.already_up_to_date ? " (already up to date)." : "."));
    selectedDirty = true;
    refresh();
  }

  async function kill(force) {
    const name = selected;
    const where = $("action-result");
    const url = "/v1/agents/" + encodeURIComponent(name) + (force ? "?force=true" : "");
    const { ok, data } = await call("DELETE", url);
    if (!ok) {
      const box = refusal(where, data);
      if ((data.error || {}).type === "Refused") {
        box.append(button("Kill anyway: keep the work under refs/fracta/archive/" + name + "/<time>", "danger",
          () => kill(true)));
      }
      return;
    }
    const saved = data.saved;
    say(where, "ok", `Killed ${name}` + (data.stopped ? " (its processes were stopped)." : "."),
      saved ? `Its work is kept in ${saved.ref} (${saved.commit.slice(0, 10)}); to restore: ${saved.restore}` : "");
  }

  async function send(event) {
    event.preventDefault();
    const to = $("send-to").value.trim();
    const message = $("send-message").value;
    const where = $("send-result");
    const { ok, data } = await call("POST", "/v1/messages", { to, message });
    if (!ok) return refusal(where, data);
    $("send-message").value = "";
    const lost = Object.entries(data.undeliverable || {}).map(([who, why]) => `undeliverable to ${who}: ${why}`);
    const names = data.sent.map((m) => m.to).join(", ") || "nobody";
    say(where, lost.length ? "refused" : "ok", `Sent to ${names}.`, ...lost);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("fleet").addEventListener("click", (event) => {
      const row = event.target.closest("tr.agent");
      if (!row) return;
      event.preventDefault();
      open(row.dataset.agent);
    });
    $("merge-preview").addEventListener("click", previewMerge);
    $("kill").addEventListener("click", () => kill(false));
    $("send").addEventListener("submit", send);
    setInterval(() => refresh(), 15000); // stalled comes with time alone, no event says it
    follow();
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (wanted && document.getElementById("agent-" + wanted)) open(wanted);
  });
})();
