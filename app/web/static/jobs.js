/* Sluice dashboard: replay and backtest jobs. Asks the API for a job until it is done, then draws it;
   a replay with the release page's own per-check charts (window.SluiceDashboard, from dashboard.js). */
(function () {
  "use strict";

  const D = window.SluiceDashboard;
  if (!D) return;
  const { h, fill, clock, iso, dur, getJSON, setLive } = D;
  const POLL_MS = Math.max(1, parseFloat(document.body.dataset.poll || "2")) * 1000;
  const TERMINAL = new Set(["succeeded", "failed", "aborted"]);

  /** POST a job with the dashboard's session cookie (SameSite=Strict); the answer names its page. */
  async function ask(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const detail = Array.isArray(answer.detail) ? ` (${answer.detail.map((d) => `${d.field}: ${d.problem}`).join("; ")})` : "";
      throw new Error((answer.error || `${resp.status} ${resp.statusText}`) + detail);
    }
    return answer;
  }

  function statusBadge(job) {
    const el = document.getElementById("j-status");
    const cls = { queued: "pending", running: "running", done: "succeeded", failed: "failed" }[job.status];
    el.className = `state state-${cls}`;
    el.textContent = job.status;
  }

  /** Ask for the job until it has ended; `draw` gets the finished job. */
  async function follow(kind, draw) {
    const id = document.body.dataset.job;
    let timer = null;
    async function poll() {
      clearTimeout(timer);
      try {
        const job = await getJSON(`/api/v1/${kind}s/${encodeURIComponent(id)}`);
        statusBadge(job);
        document.body.dataset.status = job.status;
        if (job.status === "failed") {
          const box = document.getElementById("j-verdict");
          box.hidden = false;
          box.className = "verdict failed";
          fill(box, h("div", { class: "headline", text: `The ${kind} failed` }), h("div", { class: "reason", text: job.error || "" }));
          setLive("", `ended ${clock(job.finished_at)}`);
          return;
        }
        if (job.status === "done") {
          draw(job.result, job);
          setLive("", `done ${clock(job.finished_at)} · kept until ${clock(job.expires_at)}`);
          return;
        }
        setLive("on", `${job.status} · asked ${clock(job.created_at)}`);
      } catch (err) {
        const notFound = /no (replay|backtest)/.test(err.message);
        setLive("stale", notFound ? err.message : `cannot reach Sluice (${err.message}); retrying`);
        if (notFound) {
          fill(document.getElementById("j-status"), "missing");
          return;
        }
      }
      timer = setTimeout(poll, POLL_MS);
    }
    poll();
  }

  function notes(list) {
    fill(document.getElementById("notes"), list.map((n) => h("li", { text: n })));
  }

  // --- a replay ---------------------------------------------------------------------------------------

  /** The replayed release as the release page's charts read one: its evaluations, steps and end. */
  function chartRelease(r) {
    const rel = r.release;
    const events = [];
    let finished = null;
    for (const s of r.steps) {
      if (s.replayed === "start") events.push({ at: s.at, type: "started", data: { step: 1 } });
      if (s.replayed === "advance") events.push({ at: s.at, type: "step_passed", data: { step: s.step + 1 } });
      if (finished === null && TERMINAL.has(s.state)) finished = s.at;
    }
    return {
      ...rel,
      state: r.replayed_state,
      finished_at: finished,
      steps: r.policy_steps,
      checks: r.checks,
      evaluations: r.evaluations,
      events,
    };
  }

  function ending(r) {
    if (!TERMINAL.has(r.replayed_state)) return `the release ${r.recorded_state}; the replay is still ${r.replayed_state} where the record ends`;
    if (r.replayed_state === r.recorded_state) return `the replay also ends ${r.replayed_state}`;
    return `the replay ends ${r.replayed_state}, the release ${r.recorded_state}`;
  }

  function drawReplay(r) {
    const rel = r.release;
    const title = document.getElementById("j-title");
    fill(title, `${rel.service} ${rel.source_version} → `, h("b", { text: rel.target_version }));
    const link = h("a", { href: `/releases/${encodeURIComponent(rel.id)}`, text: rel.id });
    fill(document.getElementById("j-release"), link);
    fill(document.getElementById("j-meta"),
      h("span", {}, "policy ", h("b", { text: r.policy }), r.policy !== rel.policy ? ` (the release ran under ${rel.policy})` : ""),
      h("span", {}, "application ", h("b", { text: rel.application })),
      h("span", { title: iso(rel.created_at) }, "release started ", h("b", { text: clock(rel.created_at) })));
    document.title = `Replay · ${rel.service} ${rel.target_version} · Sluice`;

    const box = document.getElementById("j-verdict");
    box.hidden = false;
    box.className = `verdict ${r.same ? "succeeded" : "failed"} replay-verdict`;
    const headline = r.same
      ? `Same decisions at every evaluation: ${r.replayed_state}, as recorded`
      : `${r.differences === 1 ? "1 decision differs" : `${r.differences} decisions differ`}: ${ending(r)}`;
    fill(box,
      h("div", { class: "headline", text: headline }),
      h("div", { class: "why" },
        h("div", { class: "fact" }, h("span", { class: "k", text: "Happened" }), h("span", { class: "v", text: r.recorded_state })),
        h("div", { class: "fact" }, h("span", { class: "k", text: "Replayed" }),
          h("span", { class: `v${r.replayed_state !== r.recorded_state ? " bad" : ""}`, text: `${r.replayed_state}${r.replayed_step ? ` at step ${r.replayed_step}` : ""}` })),
        h("div", { class: "fact" }, h("span", { class: "k", text: "Evaluations" }), h("span", { class: "v", text: String(r.steps.length) }))),
      h("div", { class: "reason mono", text: r.replayed_reason }));

    const all = document.getElementById("all-steps");
    const drawRows = () => {
      const rows = r.steps.filter((s) => all.checked || s.differs || s.verdicts.length || s.replayed !== "hold" || (s.recorded && s.recorded !== "hold"))
        .filter((s) => all.checked || s.reason !== "(ended)" || s.differs);
      const tbody = document.querySelector("#decisions tbody");
      tbody.replaceChildren(...rows.map((s) => h("tr", { class: s.differs ? "differs" : "", "data-differs": s.differs ? "1" : "0" },
        h("td", { title: iso(s.at), text: `+${dur(s.at - rel.created_at)}` }),
        h("td", { text: s.step > 0 ? String(s.step) : "—" }),
        h("td", {}, h("span", { class: `kind k-${s.recorded || "none"}`, text: s.recorded || "—" }), s.external ? h("span", { class: "muted small", text: " by hand / router" }) : null),
        h("td", { class: "mark", text: s.differs ? "≠" : "=" }),
        h("td", {}, h("span", { class: `kind k-${s.replayed}`, text: s.replayed })),
        h("td", { class: "reason" }, s.reason,
          ...s.verdicts.map((v) => h("div", { class: "verdict-diff", text: `verdict differs: ${v}` })),
          s.differs && s.recorded_reason ? h("div", { class: "muted small", text: `happened: ${s.recorded_reason}` }) : null))));
      if (!rows.length) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No decisions." })));
    };
    all.addEventListener("change", drawRows);
    drawRows();

    const chartRel = chartRelease(r);
    D.page.release = chartRel;
    D.page.x0 = rel.created_at - 1;
    const last = r.steps.length ? r.steps[r.steps.length - 1].at : rel.created_at + 10;
    D.page.x1 = Math.max(last, D.page.x0 + 10);
    D.page.x1 += (D.page.x1 - D.page.x0) * 0.04;
    D.renderChecks(chartRel, D.checkDefs(chartRel));
    notes(r.notes);
  }

  // --- a backtest -------------------------------------------------------------------------------------

  const CLASS = { caught: "good", ok: "good", "FALSE ROLLBACK": "bad", "MISSED REGRESSION": "bad", "-": "" };

  function drawBacktest(b) {
    fill(document.getElementById("j-title"), h("b", { text: b.service }), ` · ${b.policies.join(" vs ")}`);
    fill(document.getElementById("j-meta"),
      h("span", {}, "application ", h("b", { text: b.application })),
      h("span", {}, "from ", h("b", { text: clock(b.since) }), " to ", h("b", { text: clock(b.until) })),
      h("span", {}, h("b", { text: String(b.changes.length) }), ` version change${b.changes.length === 1 ? "" : "s"}`),
      h("span", {}, "took ", h("b", { text: `${b.seconds.toFixed(1)}s` })));
    const box = document.getElementById("j-verdict");
    box.hidden = false;
    const wrong = b.tallies.reduce((n, t) => n + t.false_rollbacks + t.missed_regressions, 0);
    box.className = `verdict ${wrong ? "failed" : "succeeded"}`;
    fill(box,
      h("div", { class: "headline", text: b.tallies.map((t) => `${t.policy}: ${t.false_rollbacks} false rollback${t.false_rollbacks === 1 ? "" : "s"}, ${t.missed_regressions} missed regression${t.missed_regressions === 1 ? "" : "s"}`).join(" · ") }),
      h("div", { class: "reason", text: `over ${b.changes.length} version change${b.changes.length === 1 ? "" : "s"}; a decision is only scored where history knows whether the version was good or bad` }));
    const two = b.policies.length === 2;
    fill(document.querySelector("#backtest thead"), h("tr", {},
      h("th", { text: "Versions" }), h("th", { text: "First traffic" }), h("th", { text: "History says" }),
      ...b.policies.flatMap((p) => [h("th", { text: `${p} decides` }), h("th", { text: "Result" })]),
      two ? h("th", { text: "Agree" }) : null));
    const tbody = document.querySelector("#backtest tbody");
    if (!b.changes.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 3 + 2 * b.policies.length, class: "muted", text: "No version change in the period." })));
    } else {
      tbody.replaceChildren(...b.changes.map((c) => h("tr", { "data-target": c.target, class: two && c.agree === false ? "differs" : "" },
        h("td", { class: "mono" }, `${c.source || "?"} → `, h("b", { text: c.target })),
        h("td", { title: iso(c.first_traffic), text: clock(c.first_traffic) }),
        h("td", {}, h("span", { class: `pill ${c.outcome === "bad" ? "failed" : c.outcome === "good" ? "delivered" : ""}`, text: c.outcome || "unknown" }),
          " ", h("span", { class: "muted small", text: c.why }),
          c.release ? h("div", {}, h("a", { href: `/releases/${encodeURIComponent(c.release)}`, class: "small", text: c.release })) : null),
        ...c.verdicts.flatMap((v) => [
          h("td", { title: v.reason },
            h("span", { class: `kind k-${v.decides}`, text: v.decides }),
            v.after_seconds !== null ? ` after ${dur(v.after_seconds)}` : "",
            v.check ? h("div", { class: "muted small", text: `on ${v.check}` }) : null),
          h("td", {}, h("span", { class: `classification ${CLASS[v.classification] || ""}`, text: v.classification })),
        ]),
        two ? h("td", { class: c.agree ? "" : "mark", text: c.agree ? "yes" : "NO" }) : null)));
    }
    notes(b.notes);
  }

  // --- the forms ----------------------------------------------------------------------------------------

  function initBacktestForms() {
    for (const row of document.querySelectorAll("tr.backtest-form")) {
      const button = row.querySelector(".run-backtest");
      const msg = row.querySelector(".msg");
      button.addEventListener("click", async () => {
        const policy = row.querySelector("[name=policy]").value;
        const compare = row.querySelector("[name=compare]").value;
        const body = { service: row.dataset.service, application: row.dataset.application, since: row.querySelector("[name=since]").value.trim() };
        if (compare) body.compare = [policy || row.dataset.policy, compare];
        else if (policy) body.policy = policy;
        button.disabled = true;
        msg.className = "msg";
        msg.textContent = "asking…";
        try {
          const job = await ask("/api/v1/backtests", body);
          location.href = job.page_url;
        } catch (err) {
          msg.className = "msg error";
          msg.textContent = err.message;
          button.disabled = false;
        }
      });
    }
  }

  /** The release page: a Replay button once the release has ended. */
  function initReplayButton() {
    const box = document.getElementById("replay-box");
    if (!box) return;
    const show = () => { box.hidden = !TERMINAL.has(document.body.dataset.state || ""); };
    new MutationObserver(show).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
    show();
    const select = document.getElementById("replay-policy");
    getJSON("/api/v1/policies").then((data) => {
      for (const p of data.policies) select.append(h("option", { value: p.name, text: p.name }));
    }).catch(() => {});
    const button = document.getElementById("replay-button");
    const msg = document.getElementById("replay-msg");
    button.addEventListener("click", async () => {
      button.disabled = true;
      msg.className = "msg";
      msg.textContent = "asking…";
      const body = { release: document.body.dataset.release };
      if (select.value) body.policy = select.value;
      try {
        const job = await ask("/api/v1/replays", body);
        location.href = job.page_url;
      } catch (err) {
        msg.className = "msg error";
        msg.textContent = err.message;
        button.disabled = false;
      }
    });
  }

  const which = document.body.dataset.page;
  if (which === "replay") follow("replay", drawReplay);
  else if (which === "backtest") follow("backtest", drawBacktest);
  else if (which === "backtests") initBacktestForms();
  else if (which === "release") initReplayButton();
})();
