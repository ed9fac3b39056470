/* Sluice dashboard. Polls the JSON API and draws with the vendored uPlot; no other dependencies. */
(function () {
  "use strict";

  const POLL_MS = Math.max(1, parseFloat(document.body.dataset.poll || "2")) * 1000;
  const TERMINAL = new Set(["succeeded", "failed", "aborted"]);
  const COLORS = { value: "#1f6fd1", limit: "#c8281e", pass: "#12855a", fail: "#c8281e", nodata: "#8a96a3" };
  const TOKEN_KEY = "sluice-api-token";

  // --- small helpers ---------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      // Through the CSSOM: the CSP (app/web/security.py) refuses inline style attributes.
      else if (k === "style") el.style.cssText = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** replaceChildren without the nulls (which the DOM would print as "null"). */
  function fill(el, ...kids) {
    el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  }

  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(ts) {
    if (!ts) return "—";
    const d = new Date(ts * 1000);
    const today = new Date().toDateString() === d.toDateString();
    const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return today ? t : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
  }
  function iso(ts) { return ts ? new Date(ts * 1000).toISOString() : ""; }
  /** A time-axis label: HH:MM:SS, or HH:MM when every tick falls on a whole minute. */
  function axisClock(t, splits) {
    const d = new Date(t * 1000);
    const minutes = splits.every((x) => Math.round(x) % 60 === 0);
    return minutes ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** What a step sends to the candidate, in words (the API's step_labels): "10%", or a segment. */
  function stepLabel(rel, i) {
    const labels = rel.step_labels || [];
    if (labels[i]) return labels[i];
    const s = (rel.steps || [])[i];
    return s ? `${s.weight}%` : "";
  }

  /** A shaped step's label ("segment header ...") is not a share of traffic. */
  function isShare(label) {
    return /^\d+%$/.test(label);
  }

  function dur(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }
  function num(v) {
    if (v === null || v === undefined || !isFinite(v)) return "no data";
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 1) return String(+v.toPrecision(4));
    return String(+v.toPrecision(3));
  }
  function pct(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "no data";
    return `${(v * 100).toFixed(digits === undefined ? (Math.abs(v) < 0.1 ? 2 : 1) : digits)}%`;
  }

  async function getJSON(url) {
    // Same-origin fetches carry the HttpOnly session cookie set by /login; when it has expired
    // (or the token changed), log in again and come back here.
    const resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
    if (resp.status === 401) {
      location.href = `/login?${new URLSearchParams({ next: location.pathname + location.search })}`;
      throw new Error("log in first");
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
    return body;
  }

  function setLive(state, text) {
    const el = document.getElementById("live");
    if (!el) return;
    el.className = `live ${state}`;
    el.textContent = text;
  }

  function stateBadge(state) { return h("span", { class: `state state-${state}`, text: state }); }
  // A shadow release is judged like any other but never moves traffic: badged everywhere it is shown.
  function shadowBadge(rel) {
    return rel.mode === "shadow"
      ? h("span", { class: "mode-shadow", title: "Shadow release: judged only; Sluice did not move traffic", text: "shadow" })
      : null;
  }

  // --- what a check's numbers mean -------------------------------------------------------------------

  /** How to show a check's values: fractions as percentages, rates per minute, health as up/down. */
  function formatterFor(check) {
    const type = check && check.type;
    if (check && check.name === "health") return (v) => (v === null || v === undefined ? "no data" : v >= 1 ? "up" : "down");
    if (type === "latency" || type === "error_rate") return (v) => pct(v);
    if (type === "request_rate") return (v) => (v === null || v === undefined ? "no data" : `${num(v)}/min`);
    return num;
  }

  /** The limits an evaluation was judged against: min and max are fixed; max_over_stable moves with stable. */
  function limitsFor(check, ev) {
    if (!check) return { lo: null, hi: null };
    if (check.name === "health") return { lo: 1, hi: null };
    let hi = check.max;
    if (check.max_over_stable !== null && check.max_over_stable !== undefined) {
      const stable = ev && ev.stable_value !== null && ev.stable_value !== undefined ? ev.stable_value : 0;
      const moving = stable + check.max_over_stable;
      hi = hi === null || hi === undefined ? moving : Math.min(hi, moving);
    }
    return { lo: check.min === undefined ? null : check.min, hi: hi === undefined ? null : hi };
  }

  function describeLimit(check, ev, fmt) {
    const { lo, hi } = limitsFor(check, ev);
    const parts = [];
    if (lo !== null) parts.push(`≥ ${fmt(lo)}`);
    if (hi !== null) {
      if (check.max_over_stable !== null && check.max_over_stable !== undefined) {
        const stable = ev && ev.stable_value !== null && ev.stable_value !== undefined ? ev.stable_value : 0;
        parts.push(`≤ ${fmt(hi)} (stable ${fmt(stable)} + ${fmt(check.max_over_stable)})`);
      } else parts.push(`≤ ${fmt(hi)}`);
    }
    return parts.join(" and ") || (ev ? ev.threshold : "");
  }

  // --- the release page ------------------------------------------------------------------------------

  const page = { release: null, charts: new Map(), x0: 0, x1: 1, timer: null, folded: new Map() };

  /** An error_rate check with only max_over_stable is not judged on its own: it sets the margin of
   * the errors-vs-stable comparison (app/core/judge/judging.py), so its card would stay empty. */
  function foldedIntoComparison(c, rel) {
    const set = (v) => v !== null && v !== undefined;
    return c.type === "error_rate" && set(c.max_over_stable) && !set(c.max) && !set(c.min)
      && !rel.evaluations.some((e) => e.name === c.name);
  }

  function checkDefs(rel) {
    const defs = new Map();
    const folded = [];
    for (const c of rel.checks || []) {
      if (foldedIntoComparison(c, rel)) folded.push(c.name);
      else defs.set(c.name, c);
    }
    page.folded = new Map(folded.length ? [["errors-vs-stable", folded]] : []);
    for (const ev of rel.evaluations) {
      if (!defs.has(ev.name)) {
        defs.set(ev.name, ev.name === "health"
          ? { name: "health", type: "health", threshold: ev.threshold, min: 1, max: null, max_over_stable: null }
          : { name: ev.name, type: ev.name.endsWith("-vs-stable") ? "compared with stable" : "query", threshold: ev.threshold, min: null, max: null, max_over_stable: null });
      }
    }
    return defs;
  }

  /** The evaluations that ended a failed release: those of its last tick that did not pass. */
  function decisive(rel) {
    if (rel.state !== "failed") return [];
    // What failed the release: failing evaluations first, then missing data ("waiting" is not a cause).
    const failing = rel.evaluations.filter((e) => e.verdict === "fail");
    const bad = failing.length ? failing : rel.evaluations.filter((e) => e.verdict === "no_data");
    if (!bad.length) return [];
    const atEnd = bad.filter((e) => rel.finished_at && Math.abs(e.at - rel.finished_at) < 0.001);
    if (atEnd.length) return atEnd;
    const last = bad[bad.length - 1].at;
    return bad.filter((e) => e.at === last);
  }

  function stepStarts(rel) {
    const starts = {};
    for (const e of rel.events) {
      if ((e.type === "started" || e.type === "step_passed") && e.data && e.data.step) starts[e.data.step - 1] = e.at;
    }
    return starts;
  }

  function renderHead(rel) {
    const st = document.getElementById("h-state");
    st.className = `state state-${rel.state}`;
    st.textContent = rel.state;
    const badge = document.getElementById("h-mode");
    if (badge) fill(badge, shadowBadge(rel));
    const meta = document.getElementById("h-meta");
    const ci = rel.ci || {};
    fill(meta, 
      h("span", {}, "application ", h("b", { text: rel.application }), ` · ${rel.namespace}`),
      h("span", {}, "policy ", h("b", { text: rel.policy })),
      h("span", { title: iso(rel.created_at) }, "started ", h("b", { text: clock(rel.created_at) })),
      h("span", {}, TERMINAL.has(rel.state) ? "took " : "running for ", h("b", { text: dur(rel.duration_seconds) })),
      h("span", {}, "trigger ", h("b", { text: rel.trigger })),
      ci.build_url ? h("a", { href: ci.build_url, rel: "noopener", target: "_blank" }, "CI build ↗") : null,
    );
    document.title = `${rel.state.toUpperCase()} · ${rel.service} ${rel.target_version} · Sluice`;
  }

  function fact(k, v, bad) {
    return h("div", { class: "fact" }, h("span", { class: "k", text: k }), h("span", { class: `v${bad ? " bad" : ""}`, text: v }));
  }

  function renderVerdict(rel, defs) {
    const box = document.getElementById("verdict");
    const steps = rel.steps || [];
    const total = steps.length || "?";
    const stepNo = rel.step >= 0 ? rel.step + 1 : null;
    const shadow = rel.mode === "shadow";
    const seen = shadow ? rel.observed_weights || {} : rel.weights;
    const weight = seen[rel.target_version] || 0;
    const stableShare = seen[rel.source_version] || 0;
    box.hidden = false;
    box.className = `verdict ${rel.state}`;
    const children = [];
    if (rel.state === "failed") {
      const bad = decisive(rel);
      if (bad.length) {
        const ev = bad[0];
        const check = defs.get(ev.name);
        const fmt = formatterFor(check);
        const w = steps[ev.step] ? stepLabel(rel, ev.step) : null;
        children.push(
          h("div", { class: "headline" },
            `${shadow ? "Judged failed (shadow: nothing rolled back)" : "Rolled back"}: check “${ev.name}” ${ev.verdict === "no_data" ? "had no data" : "failed"} at step ${ev.step + 1} of ${total}`),
          h("div", { class: "why" },
            fact("Check", ev.name, true),
            fact("Measured", fmt(ev.value), true),
            fact("Threshold", describeLimit(check, ev, fmt)),
            fact("Step", `${ev.step + 1} of ${total}${w !== null ? ` · ${w}${isShare(w) ? " traffic" : ""}${shadow ? " (not set: shadow)" : ""}` : ""}`),
            fact("When", `${clock(ev.at)} (+${dur(ev.at - rel.created_at)})`),
            fact("Traffic now", `${stableShare}% on ${rel.source_version}`)),
        );
        if (ev.detail) children.push(h("div", { class: "reason evidence" }, ev.detail));
        if (bad.length > 1) children.push(h("div", { class: "reason" }, `Also failing then: ${bad.slice(1).map((e) => e.name).join(", ")}`));
      } else {
        children.push(h("div", { class: "headline" }, `${shadow ? "Judged failed" : "Rolled back"} at step ${stepNo || "?"} of ${total}`));
      }
      children.push(h("div", { class: "reason mono", text: rel.reason || "" }));
    } else if (rel.state === "aborted") {
      children.push(
        h("div", { class: "headline" }, `Aborted at step ${stepNo || "?"} of ${total} — ${shadow ? "traffic untouched (shadow)" : `traffic back on ${rel.source_version}`}`),
        h("div", { class: "reason", text: rel.reason || "" }),
      );
    } else if (rel.state === "succeeded") {
      children.push(
        h("div", { class: "headline" }, shadow ? `Passed: Sluice would have promoted ${rel.target_version} (shadow: nothing changed)`
          : `Promoted: ${rel.target_version} is now the stable version`),
        h("div", { class: "reason", text: rel.reason || "" }),
      );
    } else if (rel.state === "baking") {
      // Promoted, still judged against the previous version's history (docs/bake.md): the reason has the time left.
      children.push(
        h("div", { class: "headline" }, `Baking: ${rel.target_version} is the stable version; ${rel.source_version} stays warm until ${clock(rel.bake_until)}`),
        h("div", { class: "reason", text: rel.reason || "" }),
      );
    } else {
      const label = rel.state === "paused" ? "Paused" : rel.state === "pending" ? "Starting" : "Running";
      const shape = stepNo ? stepLabel(rel, stepNo - 1) : "";
      const share = shadow || isShare(shape) ? `${weight}% of traffic` : shape;
      children.push(
        h("div", { class: "headline" },
          stepNo ? `${label}${shadow ? " (shadow)" : ""}: step ${stepNo} of ${total} · ${share} on ${rel.target_version}` : `${label}…`),
        h("div", { class: "reason", text: rel.reason || "" }),
      );
    }
    if (shadow) children.push(h("div", { class: "shadow-note", text: "Shadow release: every check and verdict ran, but Sluice did not move traffic; the weights shown are the router's own." }));
    fill(box, children);
  }

  function renderSteps(rel) {
    const ol = document.getElementById("steps");
    const starts = stepStarts(rel);
    const now = Date.now() / 1000;
    ol.replaceChildren(...(rel.steps || []).map((s, i) => {
      let cls = "todo";
      let progress = 0;
      if (i < rel.step) { cls = "done"; progress = 1; }
      else if (i === rel.step) {
        if (rel.state === "failed") cls = "ended-failed";
        else if (rel.state === "aborted") cls = "ended-aborted";
        else if (rel.state === "succeeded") cls = "done";
        else cls = "current";
        const started = starts[i] || rel.step_started_at;
        const seconds = parseDuration(s.duration);
        const end = rel.finished_at || now;
        progress = cls === "done" ? 1 : seconds && started ? Math.min(1, (end - started) / seconds) : 0.5;
      }
      const cond = [s.duration ? `${s.duration}` : null, s.requests ? `${s.requests} requests` : null, s.pause ? "then pause" : null]
        .filter(Boolean).join(" + ");
      const status = { done: "passed", current: rel.state === "paused" ? "paused" : "in progress",
        "ended-failed": "failed here", "ended-aborted": "aborted here", todo: rel.state === "succeeded" ? "skipped" : "not reached" }[cls];
      return h("li", { class: cls, "data-step": i + 1 },
        h("div", { class: "n" }, `Step ${i + 1} · ${status}`),
        h("div", { class: "w", title: stepLabel(rel, i) }, isShare(stepLabel(rel, i)) ? `${s.weight}%` : stepLabel(rel, i).split(" ")[0]),
        isShare(stepLabel(rel, i)) ? null : h("div", { class: "shape", text: stepLabel(rel, i).replace(/^\S+\s*/, "") }),
        h("div", { class: "cond" }, cond || "—"),
        h("div", { class: "when" }, starts[i] ? `from ${clock(starts[i])}` : "\u00a0"),
        h("div", { class: "bar" }, h("span", { style: `width:${Math.round(progress * 100)}%` })));
    }));
    const tr = document.getElementById("traffic");
    const shadow = rel.mode === "shadow";
    const weights = shadow ? rel.observed_weights || {} : rel.weights;
    const c = weights[rel.target_version] || 0;
    const sw = weights[rel.source_version] || 0;
    const label = shadow ? "Traffic as the router has it (shadow: not moved by Sluice)"
      : `Traffic ${TERMINAL.has(rel.state) ? "now" : "wanted"}${rel.weights_applied ? "" : " (router not yet updated)"}`;
    fill(tr, 
      h("div", { class: "label" }, label),
      h("div", { class: "split", id: "split" },
        sw ? h("span", { class: "s", style: `width:${sw}%`, title: `${rel.source_version}: ${sw}%` }, `${rel.source_version} · ${sw}%`) : null,
        c ? h("span", { class: "c", style: `width:${c}%`, title: `${rel.target_version}: ${c}%` }, `${rel.target_version} · ${c}%`) : null));
  }

  function parseDuration(text) {
    if (text === null || text === undefined) return null;
    if (typeof text === "number") return text;
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(text);
    if (!m) return null;
    return parseFloat(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
  }

  function markersFor(rel) {
    const marks = [];
    const steps = rel.steps || [];
    const starts = stepStarts(rel);
    for (const [i, at] of Object.entries(starts)) {
      const w = steps[i] ? stepLabel(rel, +i).split(" ")[0] : "";
      marks.push({ at, label: `step ${+i + 1} ${w}`, color: "#66707d" });
    }
    if (rel.finished_at) {
      const color = rel.state === "failed" ? COLORS.fail : rel.state === "aborted" ? "#b25e00" : COLORS.pass;
      marks.push({ at: rel.finished_at, label: rel.state, color });
    }
    return marks;
  }

  function markersPlugin() {
    return {
      hooks: {
        draw: [(u) => {
          const rel = page.release;
          if (!rel) return;
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          const dpr = uPlot.pxRatio;
          ctx.save();
          ctx.font = `600 ${11 * dpr}px system-ui, sans-serif`;
          ctx.textAlign = "left";
          ctx.textBaseline = "top";
          for (const m of markersFor(rel)) {
            const x = Math.round(u.valToPos(m.at, "x", true));
            if (x < left - 1 || x > left + width + 1) continue;
            ctx.strokeStyle = m.color;
            ctx.fillStyle = m.color;
            ctx.lineWidth = dpr;
            ctx.setLineDash([4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const tw = ctx.measureText(m.label).width;
            const tx = x + 4 * dpr + tw > left + width ? x - 6 * dpr - tw : x + 4 * dpr;
            ctx.setLineDash([]);
            ctx.fillStyle = "rgba(255,255,255,0.85)";
            ctx.fillRect(tx - 2 * dpr, top + 2 * dpr, tw + 4 * dpr, 14 * dpr);
            ctx.fillStyle = m.color;
            ctx.fillText(m.label, tx, top + 3 * dpr);
          }
          ctx.restore();
        }],
      },
    };
  }

  function hasLimits(check) {
    const lo = check.name === "health" || (check.min !== null && check.min !== undefined);
    const hi = (check.max !== null && check.max !== undefined) || (check.max_over_stable !== null && check.max_over_stable !== undefined);
    return { lo, hi };
  }

  function chartData(check, evs) {
    const xs = [], values = [], lo = [], hi = [], pass = [], fail = [], nodata = [];
    const has = hasLimits(check);
    for (const ev of evs) {
      const lim = limitsFor(check, ev);
      xs.push(ev.at);
      values.push(ev.value);
      lo.push(lim.lo);
      hi.push(lim.hi);
      pass.push(ev.verdict === "pass" ? ev.value : null);
      fail.push(ev.verdict === "fail" ? ev.value : null);
      nodata.push(ev.verdict === "no_data" ? (lim.lo !== null ? lim.lo : lim.hi !== null ? lim.hi : 0) : null);
    }
    return [xs, values, ...(has.lo ? [lo] : []), ...(has.hi ? [hi] : []), pass, fail, nodata];
  }

  function makeChart(el, check) {
    const fmt = formatterFor(check);
    const fraction = check.type === "latency" || check.type === "error_rate";
    const has = hasLimits(check);
    const dots = (color, size, label) => ({
      label, stroke: color, fill: color, paths: () => null,
      points: { show: true, space: 0, size, fill: color, stroke: label === "fail" ? "#fff" : color, width: label === "fail" ? 2 : 1 },
      value: (u, v) => (v === null ? "" : fmt(v)),
    });
    const limitSeries = (label) => ({
      label, stroke: COLORS.limit, width: 2, dash: [7, 5], points: { show: false }, spanGaps: true,
      paths: uPlot.paths.stepped({ align: 1 }), value: (u, v) => (v === null ? "—" : fmt(v)),
    });
    const opts = {
      width: Math.max(280, el.clientWidth || 400),
      height: 190,
      cursor: { points: { size: 8 } },
      legend: { show: false },
      scales: {
        x: { time: true, range: () => [page.x0, page.x1] },
        y: {
          range: (u, min, max) => {
            const lo = Math.min(0, isFinite(min) ? min : 0);
            let top = isFinite(max) ? max : 1;
            if (fraction) top = Math.max(top, check.type === "latency" ? 1 : 0.02);
            if (check.name === "health") return [-0.15, 1.3];
            return [lo, top <= lo ? lo + 1 : top + (top - lo) * 0.22];
          },
        },
      },
      axes: [
        // Time labels ("14:02:05", ~60 px at 11 px) one line each, at least 90 px apart: uPlot's
        // defaults put two-line labels 50 px apart, which overlap on a card's width.
        { stroke: "#66707d", grid: { stroke: "#eef1f4" }, ticks: { stroke: "#dde2e8" }, space: 90,
          values: (u, splits) => splits.map((t) => axisClock(t, splits)) },
        { stroke: "#66707d", size: 64, grid: { stroke: "#eef1f4" }, ticks: { stroke: "#dde2e8" },
          splits: check.name === "health" ? () => [0, 1] : undefined,
          values: (u, ticks) => ticks.map((t) => (fraction ? pct(t, 0) : check.name === "health" ? (t === 1 ? "up" : t === 0 ? "down" : "") : num(t))) },
      ],
      series: [
        { value: (u, v) => (v === null ? "" : clock(v)) },
        { label: "value", stroke: COLORS.value, width: 2, points: { show: false }, value: (u, v) => fmt(v) },
        ...(has.lo ? [limitSeries(check.name === "health" ? "must be" : "minimum")] : []),
        ...(has.hi ? [limitSeries(check.max_over_stable !== null && check.max_over_stable !== undefined ? "limit (stable +)" : "maximum")] : []),
        dots(COLORS.pass, 7, "pass"),
        dots(COLORS.fail, 12, "fail"),
        dots(COLORS.nodata, 8, "no data"),
      ],
      plugins: [markersPlugin()],
    };
    return new uPlot(opts, opts.series.map(() => []), el);
  }

  function renderChecks(rel, defs) {
    const container = document.getElementById("checks");
    const byName = new Map();
    for (const name of defs.keys()) byName.set(name, []);
    for (const ev of rel.evaluations) byName.get(ev.name).push(ev);
    const failingNow = new Set(decisive(rel).map((e) => e.name));
    // Waiting for evidence (verdict "insufficient": too little traffic yet, or the warm-up) is not
    // failing: drawn neutral and listed after what fails.
    const waitingNow = new Set();
    for (const [name, evs] of byName) {
      const last = evs[evs.length - 1];
      if (rel.state === "failed" || !last || last.verdict === "pass") continue;
      (last.verdict === "insufficient" ? waitingNow : failingNow).add(name);
    }
    const order = [...defs.keys()].sort((a, b) => (failingNow.has(b) - failingNow.has(a)) || (a === "health") - (b === "health"));
    for (const name of order) {
      const check = defs.get(name);
      const evs = byName.get(name);
      let entry = page.charts.get(name);
      if (!entry) {
        const card = h("div", { class: "check", "data-check": name });
        const head = h("div", { class: "ch-head" });
        const sub = h("div", { class: "ch-sub" });
        const detail = h("div", { class: "ch-detail" });
        const chartEl = h("div", { class: "chart" });
        const legend = h("div", { class: "ch-legend" },
          h("span", { class: "lg-value" }, "value"), h("span", { class: "lg-limit" }, "threshold"),
          h("span", { class: "lg-pass" }, "pass"), h("span", { class: "lg-fail" }, "fail"),
          h("span", { class: "lg-nodata" }, "no data"), h("span", { class: "lg-step" }, "step change"));
        card.append(head, sub, detail, chartEl, legend);
        container.append(card);
        entry = { card, head, sub, detail, chartEl, plot: null };
        page.charts.set(name, entry);
        entry.plot = makeChart(chartEl, check);
      }
      container.append(entry.card); // keeps the order: failing checks first
      const fmt = formatterFor(check);
      const last = evs[evs.length - 1];
      const fails = evs.filter((e) => e.verdict === "fail").length;
      const nodata = evs.filter((e) => e.verdict === "no_data").length;
      entry.card.classList.toggle("failing", failingNow.has(name));
      entry.card.classList.toggle("waiting", !failingNow.has(name) && waitingNow.has(name));
      entry.card.dataset.points = String(evs.length);
      fill(entry.head, 
        h("span", { class: "ch-name", text: name }),
        last ? h("span", { class: `verdict-badge ${last.verdict}`, text: last.verdict === "insufficient" ? "waiting" : last.verdict.replace("_", " ") }) : null,
        h("span", { class: "ch-last", title: last ? String(last.value) : "", text: last ? fmt(last.value) : "—" }));
      fill(entry.sub, 
        h("span", {}, "threshold ", h("b", { text: describeLimit(check, last, fmt) || check.threshold })),
        h("span", { text: `${evs.length} evaluation${evs.length === 1 ? "" : "s"}` }),
        fails ? h("span", { style: `color:${COLORS.fail}`, text: `${fails} failed` }) : null,
        nodata ? h("span", { text: `${nodata} without data` }) : null,
        check.type && check.type !== "health" ? h("span", { text: check.type.replace("_", " ") }) : null,
        page.folded && page.folded.has(name)
          ? h("span", { text: `your check${page.folded.get(name).length > 1 ? "s" : ""} ${page.folded.get(name).map((n) => `“${n}”`).join(", ")}: max_over_stable is this comparison's margin` })
          : null);
      // The evidence in words, whatever the verdict ("no evidence of being worse ..." is news too).
      entry.detail.textContent = last ? last.detail || "" : "";
      entry.detail.className = `ch-detail ${last ? last.verdict : ""}`;
      entry.plot.setData(chartData(check, evs), true);
      entry.plot.redraw(false, false);
    }
  }

  function renderDeliveries(rel) {
    const tbody = document.querySelector("#deliveries tbody");
    if (!rel.hook_deliveries.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { class: "muted", text: "No hooks fired yet." })));
      return;
    }
    tbody.replaceChildren(...rel.hook_deliveries.map((d) => {
      const last = d.attempts[d.attempts.length - 1];
      const outcome = last ? (last.status ? `HTTP ${last.status}` : last.error || "") : "not attempted yet";
      return h("tr", { "data-delivery": d.id },
        h("td", {}, h("b", { text: d.hook })),
        h("td", { text: d.event }),
        h("td", {}, h("span", { class: `pill ${d.state}`, text: d.state })),
        h("td", { text: `${d.attempts.length} attempt${d.attempts.length === 1 ? "" : "s"}` }),
        h("td", { text: outcome }),
        h("td", { class: "muted mono", text: d.target }));
    }));
  }

  function renderEvents(rel) {
    const ol = document.getElementById("events");
    const hidden = new Set(["hold"]);
    ol.replaceChildren(...rel.events.filter((e) => !hidden.has(e.type) || rel.events.length < 40).map((e) =>
      h("li", {},
        h("span", { class: "t", title: iso(e.at), text: clock(e.at) }),
        h("span", { class: "rel", text: `+${dur(e.at - rel.created_at)}` }),
        h("span", { class: `ty ${e.type}`, text: e.type }),
        h("span", { text: e.message }))));
  }

  function renderControls(rel) {
    const allowed = {
      pause: rel.state === "running",
      resume: rel.state === "paused",
      approve: !TERMINAL.has(rel.state) && (rel.reason || "").startsWith("waiting for approval"),
      promote: ["pending", "running", "paused"].includes(rel.state),
      abort: ["pending", "running", "paused", "baking"].includes(rel.state),  // during a bake: end it
      // Undo a promotion (the server refuses, saying why, if it is no longer the last one).
      rollback: ["succeeded", "baking"].includes(rel.state) && rel.trigger !== "rollback",
    };
    for (const b of document.querySelectorAll("#controls button[data-action]")) b.disabled = !allowed[b.dataset.action];
    if (TERMINAL.has(rel.state)) {
      const msg = document.getElementById("control-msg");
      const note = allowed.rollback ? "The release has ended; Roll back undoes its promotion." : "The release has ended: nothing to steer.";
      if (!msg.classList.contains("ok") && !msg.classList.contains("error")) msg.textContent = note;
    }
  }

  // One line under the head: the service's known-bad versions (a new deploy of one is refused).
  async function renderKnownBad(rel) {
    const el = document.getElementById("known-bad");
    if (!el) return;
    try {
      const q = new URLSearchParams({ application: rel.application });
      const data = await getJSON(`/api/v1/services/${encodeURIComponent(rel.service)}/known-bad?${q}`);
      el.hidden = !data.known_bad.length;
      fill(el, `Known-bad versions of ${data.service}: `, ...data.known_bad.map((k, i) => h("span", {},
        i ? "; " : "", h("b", { class: "mono", text: k.version }), ` ${k.reason}, ${clock(k.at)} (`,
        h("a", { href: `/releases/${encodeURIComponent(k.release_id)}`, text: "release" }), ")")),
        " — a new deploy of one is refused unless forced.");
    } catch (err) {
      el.hidden = true;
    }
  }

  async function rollbackService(rel) {
    const msg = document.getElementById("control-msg");
    const token = document.getElementById("token").value.trim();
    msg.className = "msg";
    if (!token) {
      msg.className = "msg error";
      msg.textContent = "Enter the API token (SLUICE_API_TOKEN) first.";
      document.getElementById("token").focus();
      return;
    }
    if (!window.confirm(`Roll back ${rel.service}: put all traffic back on ${rel.source_version} now? `
      + `${rel.target_version} becomes known-bad (a new deploy of it is refused unless forced).`)) return;
    msg.textContent = "rollback…";
    try {
      const resp = await fetch(`/api/v1/services/${encodeURIComponent(rel.service)}/rollback`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ application: rel.application, by: "the dashboard", reason: `undo release ${rel.id}` }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        msg.className = "msg error";
        msg.textContent = `rollback refused: ${body.error || resp.status}`;
        return;
      }
      msg.className = "msg ok";
      msg.textContent = `rollback ${body.state}: `;
      msg.append(h("a", { href: `/releases/${encodeURIComponent(body.id)}`, text: `release ${body.id}` }));
      renderKnownBad(rel);
    } catch (err) {
      msg.className = "msg error";
      msg.textContent = `rollback failed: ${err.message}`;
    }
  }

  function renderRelease(rel) {
    page.release = rel;
    // Every chart shares the release's time axis: from its start to its end (or now, while it runs).
    page.x0 = rel.created_at - 1;
    const end = rel.finished_at || Date.now() / 1000 + (rel.interval_seconds || 2);
    page.x1 = Math.max(end, page.x0 + 10);
    page.x1 += (page.x1 - page.x0) * 0.04;
    const defs = checkDefs(rel);
    renderHead(rel);
    renderVerdict(rel, defs);
    renderSteps(rel);
    renderChecks(rel, defs);
    renderDeliveries(rel);
    renderEvents(rel);
    renderControls(rel);
    document.body.dataset.state = rel.state;
    document.body.dataset.step = String(rel.current_step || "");
  }

  async function pollRelease(id) {
    clearTimeout(page.timer);
    try {
      const rel = await getJSON(`/api/v1/releases/${encodeURIComponent(id)}`);
      renderRelease(rel);
      if (page.knownBadFor !== rel.state) renderKnownBad(rel);  // on load, and when the release ends
      page.knownBadFor = rel.state;
      if (TERMINAL.has(rel.state)) {
        setLive("", `final · ${rel.state} at ${clock(rel.finished_at)}`);
        return;
      }
      setLive("on", `live · updated ${clock(Date.now() / 1000)}`);
    } catch (err) {
      setLive("stale", `cannot reach Sluice (${err.message}); retrying`);
    }
    page.timer = setTimeout(() => pollRelease(id), POLL_MS);
  }

  async function steer(id, action) {
    const msg = document.getElementById("control-msg");
    const token = document.getElementById("token").value.trim();
    msg.className = "msg";
    if (!token) {
      msg.className = "msg error";
      msg.textContent = "Enter the API token (SLUICE_API_TOKEN) first.";
      document.getElementById("token").focus();
      return;
    }
    if ((action === "abort" || action === "promote") && !window.confirm(
      action === "abort" ? "Abort this release and put all traffic back on the stable version?"
        : "Promote: send all traffic to the candidate now, skipping the remaining checks?")) return;
    msg.textContent = `${action}…`;
    try {
      const resp = await fetch(`/api/v1/releases/${encodeURIComponent(id)}/${action}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(action === "approve" ? { by: "dashboard" } : { reason: `${action} from the dashboard` }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        msg.className = "msg error";
        msg.textContent = `${action} refused: ${body.error || resp.status}`;
        return;
      }
      // approve answers {status, message, release}; the other actions the release itself.
      const rel = body.release || body;
      msg.className = "msg ok";
      msg.textContent = body.message ? `${body.message}.` : `${action}: done — the release is now ${rel.state}.`;
      renderRelease(rel);
      pollRelease(id);
    } catch (err) {
      msg.className = "msg error";
      msg.textContent = `${action} failed: ${err.message}`;
    }
  }

  function initRelease() {
    const id = document.body.dataset.release;
    const tokenInput = document.getElementById("token");
    tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
    tokenInput.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim()));
    for (const b of document.querySelectorAll("#controls button[data-action]")) {
      b.disabled = true;
      b.addEventListener("click", () => (b.dataset.action === "rollback" ? rollbackService(page.release) : steer(id, b.dataset.action)));
    }
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const e of page.charts.values()) e.plot.setSize({ width: Math.max(280, e.chartEl.clientWidth), height: 190 });
      }, 150);
    });
    pollRelease(id);
  }

  // --- the list of releases -------------------------------------------------------------------------

  const list = { limit: 25, offset: 0, timer: null };

  async function pollList() {
    clearTimeout(list.timer);
    const app = document.getElementById("f-application").value;
    const state = document.getElementById("f-state").value;
    const q = new URLSearchParams({ limit: list.limit, offset: list.offset });
    if (app) q.set("application", app);
    if (state) q.set("state", state);
    const shown = new URLSearchParams();
    if (app) shown.set("application", app);
    if (state) shown.set("state", state);
    history.replaceState(null, "", shown.toString() ? `?${shown}` : location.pathname);
    try {
      const data = await getJSON(`/api/v1/releases?${q}`);
      renderList(data);
      renderUnmatched((await getJSON("/api/v1/intake/unmatched")).unmatched);
      renderDelivery((await getJSON("/api/v1/delivery")).services);
      setLive("on", `live · updated ${clock(Date.now() / 1000)}`);
    } catch (err) {
      setLive("stale", `cannot reach Sluice (${err.message}); retrying`);
    }
    list.timer = setTimeout(pollList, Math.max(POLL_MS, 4000));
  }

  /** Deploys CircleCI sent that no configured project matched: the slug, how many, how to fix it. */
  function renderUnmatched(unmatched) {
    const box = document.getElementById("unmatched");
    box.hidden = !unmatched.length;
    document.getElementById("unmatched-list").replaceChildren(...unmatched.map((u) =>
      h("li", { "data-slug": u.slug }, h("b", { class: "mono", text: u.slug }),
        ` — ${u.count} deploy(s) ignored. `, h("span", { class: "fix", text: `Fix: ${u.fix}` }))));
  }

  /** Delivery outcomes per service (the sluice_delivery_* metrics): how often a change fails, how fast it is undone. */
  function renderDelivery(services) {
    const box = document.getElementById("delivery");
    box.hidden = !services.length;
    const rate = (v) => (v === null ? "—" : `${(v * 100).toFixed(v && v < 0.1 ? 1 : 0)}%`);
    const secs = (v) => (v === null ? "—" : dur(v));
    document.querySelector("#delivery tbody").replaceChildren(...services.map((s) =>
      h("tr", { "data-service": `${s.application}/${s.service}` },
        h("td", {}, h("b", { text: s.service }), h("span", { class: "muted", text: ` ${s.application}` })),
        h("td", { class: "num", text: s.releases }),
        h("td", { class: "num", text: s.outcomes.promoted }),
        h("td", { class: "num", text: s.outcomes.rolled_back + s.outcomes.reverted }),
        h("td", { class: "num", text: rate(s.change_failure_rate) }),
        h("td", { class: "num", text: secs(s.mean_time_to_detect_seconds) }),
        h("td", { class: "num", text: secs(s.mean_time_to_restore_seconds) }),
        h("td", { class: "num", text: secs(s.mean_release_duration_seconds) }))));
  }

  function renderList(data) {
    const tbody = document.querySelector("#releases tbody");
    if (!data.releases.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "muted", text: "No releases match." })));
    } else {
      tbody.replaceChildren(...data.releases.map((r) => {
        const href = `/releases/${encodeURIComponent(r.id)}`;
        const w = (r.mode === "shadow" ? r.observed_weights || {} : r.weights)[r.target_version] || 0;
        return h("tr", { "data-release": r.id, "data-state": r.state, onclick: (ev) => { if (ev.target.tagName !== "A") location.href = href; } },
          h("td", {}, stateBadge(r.state), shadowBadge(r)),
          h("td", {}, h("a", { href }, h("b", { text: r.service }))),
          h("td", { text: r.application }),
          h("td", { class: "mono" }, `${r.source_version} → `, h("b", { text: r.target_version })),
          h("td", { title: r.step_label || "", text: r.current_step ? `${r.current_step} · ${r.step_label && !isShare(r.step_label) && r.mode !== "shadow" ? r.step_label : `${w}%`}` : "—" }),
          h("td", { title: iso(r.created_at), text: clock(r.created_at) }),
          h("td", { text: dur(r.duration_seconds) }),
          h("td", { class: "reason", text: r.reason || "" }));
      }));
    }
    const end = Math.min(data.offset + data.releases.length, data.total);
    document.getElementById("page-info").textContent = data.total ? `${data.offset + 1}–${end} of ${data.total}` : "";
    document.getElementById("prev").disabled = data.offset <= 0;
    document.getElementById("next").disabled = end >= data.total;
  }

  async function initList() {
    const params = new URLSearchParams(location.search);
    // The filters apply as they change; never submitted (an inline onsubmit would break the CSP).
    document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
    const appSel = document.getElementById("f-application");
    const stateSel = document.getElementById("f-state");
    try {
      const apps = await getJSON("/api/v1/applications");
      for (const a of apps.applications) appSel.append(h("option", { value: a.name, text: a.name }));
    } catch (err) {
      setLive("stale", `cannot reach Sluice (${err.message})`);
    }
    appSel.value = params.get("application") || "";
    stateSel.value = params.get("state") || "";
    for (const sel of [appSel, stateSel]) sel.addEventListener("change", () => { list.offset = 0; pollList(); });
    document.getElementById("prev").addEventListener("click", () => { list.offset = Math.max(0, list.offset - list.limit); pollList(); });
    document.getElementById("next").addEventListener("click", () => { list.offset += list.limit; pollList(); });
    pollList();
  }

  // The job pages (static/jobs.js) draw replays with these same charts.
  window.SluiceDashboard = { h, fill, clock, iso, dur, num, getJSON, setLive, stateBadge, checkDefs, renderChecks, page };

  const which = document.body.dataset.page;
  if (which === "release") initRelease();
  else if (which === "releases") initList();
})();
