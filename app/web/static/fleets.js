/* Sluice dashboard: the fleets card on the releases page (docs/fleets.md). Each fleet is one row of
   waves; each wave lists its applications with their member release's state, linked to the release. */
(function () {
  "use strict";

  const box = document.getElementById("fleets");
  if (!box) return;
  const POLL_MS = Math.max(4, parseFloat(document.body.dataset.poll || "2")) * 1000;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function dur(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.round(seconds);
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  }

  function badge(state) { return h("span", { class: `state state-${state}`, text: state.replace("_", " ") }); }

  function member(m) {
    const label = h("span", { class: "fleet-app mono", text: m.application });
    const link = m.release ? h("a", { href: `/releases/${encodeURIComponent(m.release)}` }, label) : label;
    const note = m.rolled_back_by ? "rolled back" : "";
    return h("li", { class: "fleet-member", "data-application": m.application, "data-state": m.state, title: m.reason || "" },
      link, " ", badge(m.state), note ? h("span", { class: "muted", text: ` ${note}` }) : null);
  }

  function wave(w) {
    return h("div", { class: `fleet-wave wave-${w.state}`, "data-wave": w.number },
      h("div", { class: "fleet-wave-head" }, h("b", { text: `Wave ${w.number}` }), " ", badge(w.state),
        h("span", { class: "muted", text: w.duration_seconds !== null ? ` ${dur(w.duration_seconds)}` : "" })),
      h("ul", {}, w.members.map(member)));
  }

  function fleet(f) {
    return h("div", { class: "fleet", "data-fleet": f.id },
      h("div", { class: "fleet-head" }, badge(f.state), " ", h("b", { text: `${f.service} ${f.version}` }),
        h("span", { class: "muted", text: ` · fleet ${f.name} · ${dur(f.duration_seconds)} · on failure: ${f.on_failure}` })),
      f.reason ? h("p", { class: "fleet-reason", text: f.reason }) : null,
      f.awaiting_approval ? h("p", { class: "fleet-approval", text: `Wave ${f.awaiting_approval} waits for approval: sluice fleet approve ${f.id}` }) : null,
      h("div", { class: "fleet-waves" }, f.waves.map(wave)));
  }

  async function poll() {
    try {
      const resp = await fetch("/api/v1/fleets?limit=5", { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
      if (resp.ok) {
        const data = await resp.json();
        box.hidden = !data.fleets.length;
        document.getElementById("fleet-list").replaceChildren(...data.fleets.map(fleet));
      }
    } catch (err) {
      /* the releases list reports a lost connection; this card keeps what it showed */
    }
    setTimeout(poll, POLL_MS);
  }

  poll();
})();
