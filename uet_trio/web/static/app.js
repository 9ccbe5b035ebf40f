// The uet web view: the runs list, a run (DAG, timeline, failures, tasks) and a task
// (attempts, output tails, followed log), drawn from the server's JSON endpoints and
// kept current by its server-sent events. No libraries, nothing from the network.
"use strict";

const FINISHED_RUN = new Set(["succeeded", "failed", "cancelled"]);
// Kept equal to uet_trio's RunStatus and TaskState (tests/test_web.py compares them).
const FINISHED_TASK = new Set(["up_to_date", "succeeded", "failed", "skipped", "cancelled"]);
const STATES = ["pending", "ready", "running", "retry_wait", "up_to_date", "succeeded", "failed", "skipped", "cancelled"];
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const liveMark = document.getElementById("live");

// ------------------------------------------------------------------ helpers

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "-";
  if (value < 60) return value.toFixed(2) + "s";
  const minutes = Math.floor(value / 60);
  if (minutes < 60) return minutes + "m" + String(Math.floor(value % 60)).padStart(2, "0") + "s";
  return Math.floor(minutes / 60) + "h" + String(minutes % 60).padStart(2, "0") + "m";
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "-";
}

function runUrl(runId) {
  return "/runs/" + encodeURIComponent(runId);
}

function taskUrl(runId, taskId) {
  return runUrl(runId) + "/task?id=" + encodeURIComponent(taskId);
}

function badge(state) {
  return el("span", { class: "badge st-" + state, "data-state": state }, state);
}

function setCrumbs(...parts) {
  crumbs.replaceChildren();
  for (const [text, href] of parts) {
    crumbs.append(el("span", { class: "sep" }, "/"), href ? el("a", { href }, text) : text);
  }
}

function setLive(on, text) {
  liveMark.className = on ? "live on" : "live";
  liveMark.textContent = text;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function fail(error) {
  main.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
  setLive(false, "");
}

function runDuration(run, now) {
  if (run.duration !== null) return run.duration;
  if (run.started_at && !FINISHED_RUN.has(run.status)) return now - run.started_at;
  return null;
}

function countsText(counts) {
  return STATES.filter((s) => counts[s]).map((s) => counts[s] + " " + s).join(", ");
}

// ------------------------------------------------------------------ runs list

function showRuns() {
  setCrumbs(["runs", null]);
  const body = el("tbody", { id: "runs-body" });
  main.replaceChildren(
    el("h1", {}, "Runs"),
    el("table", { id: "runs" },
      el("thead", {}, el("tr", {},
        el("th", {}, "run"), el("th", {}, "workflow"), el("th", {}, "status"),
        el("th", {}, "started"), el("th", { class: "num" }, "duration"),
        el("th", { class: "num" }, "tasks"), el("th", {}, "counts"))),
      body));
  const source = new EventSource("/api/runs/live");
  source.addEventListener("runs", (event) => {
    const { runs } = JSON.parse(event.data);
    const now = Date.now() / 1000;
    body.replaceChildren(...runs.map((run) => el("tr", { "data-run": run.run_id, "data-status": run.status },
      el("td", { class: "id" }, el("a", { href: runUrl(run.run_id) }, run.run_id)),
      el("td", {}, run.workflow),
      el("td", {}, badge(run.status)),
      el("td", {}, when(run.started_at || run.created_at)),
      el("td", { class: "num" }, seconds(runDuration(run, now))),
      el("td", { class: "num" }, run.task_count),
      el("td", {}, countsText(run.counts)))));
    if (!runs.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No runs recorded yet.")));
    setLive(true, "live");
  });
  source.onerror = () => setLive(false, "reconnecting");
}

// ------------------------------------------------------------------ a run

// A node's box: labelled, or (above LABELLED tasks, where labels could not be read
// anyway and would cost the browser seconds to draw) a small square with a tooltip.
const LABELLED = 2000;
// A level taller than perColumn wraps into more columns, closer to each other than
// to the next level's.
const FULL = { w: 150, h: 20, colGap: 8, rowGap: 6, perColumn: 30, levelGap: 36 };
const COMPACT = { w: 10, h: 10, colGap: 2, rowGap: 2, perColumn: 60, levelGap: 16 };
const PAD = 10;
const MAX_EDGES = 5000, MAX_ROWS = 500;
const LANE_H = 18, AXIS_H = 22, LABEL_W = 80;

class RunPage {
  constructor(runId) {
    this.runId = runId;
    this.tasks = [];
    this.index = new Map();
    this.attempts = new Map();
    this.failures = new Map();
    this.nodes = [];
    this.rows = new Map();
    this.ganttPending = false;
    this.ganttClick = false;
    this.clockSkew = 0;
    this.bars = [];
    tipSource = this;
  }

  async start() {
    setCrumbs(["runs", "/"], [this.runId, null]);
    const snapshot = await getJSON("/api/runs/" + encodeURIComponent(this.runId));
    this.clockSkew = snapshot.now - Date.now() / 1000;
    this.run = snapshot.run;
    this.tasks = snapshot.tasks;
    this.tasks.forEach((task, n) => this.index.set(task.task_id, n));
    for (const attempt of snapshot.attempts) this.attempts.set(attempt.task_id + "\u0000" + attempt.attempt, attempt);
    for (const failure of snapshot.failures) this.failures.set(failure.task_id, failure);
    this.layout(snapshot);
    this.renderSummary();
    this.renderFailures();
    this.renderGantt();
    // Marks the page as drawn, for whoever waits for it (tests, benchmarks).
    document.documentElement.dataset.drawn = "run";
    if (FINISHED_RUN.has(this.run.status)) {
      setLive(false, "finished");
    } else {
      this.follow(snapshot.last_seq);
    }
  }

  now() {
    return Date.now() / 1000 + this.clockSkew;
  }

  layout(snapshot) {
    const title = el("h1", {}, this.run.workflow + " · " + this.run.run_id);
    this.summary = el("div", { class: "summary", id: "summary" });
    const legend = el("div", { class: "legend" }, ...STATES.map(badge));
    const note = snapshot.edge_source === "workflow" ? ""
      : " (edges rebuilt from the events: the workflow file is gone or changed, so each task shows only the dependency that released it)";
    this.dagBox = el("div", { class: "scroll", id: "dag" });
    this.ganttBox = el("div", { class: "scroll", id: "gantt" });
    this.failureBox = el("div", { id: "failures" });
    this.tableBody = el("tbody", {});
    const table = el("table", { id: "tasks" },
      el("thead", {}, el("tr", {},
        el("th", { class: "num" }, "#"), el("th", {}, "task"), el("th", {}, "state"),
        el("th", { class: "num" }, "attempts"), el("th", {}, "tool"),
        el("th", { class: "num" }, "duration"), el("th", { class: "num" }, "exit"))),
      this.tableBody);
    this.idFilter = el("input", { type: "search", id: "task-filter", placeholder: "task id contains" });
    this.stateFilter = el("select", { id: "state-filter" }, el("option", { value: "" }, "any state"),
      ...STATES.map((state) => el("option", { value: state }, state)));
    this.shownNote = el("span", { class: "muted", id: "tasks-shown" });
    this.idFilter.addEventListener("input", () => this.renderTable());
    this.stateFilter.addEventListener("change", () => this.renderTable());
    main.replaceChildren(
      title, this.summary, legend,
      el("h2", {}, "Graph", el("span", { class: "muted" }, note)), this.dagBox,
      el("h2", {}, "Timeline (attempts per worker) ",
        el("a", { id: "trace-link", class: "small", href: "/api/runs/" + encodeURIComponent(this.runId) + "/trace" },
          "trace file for Perfetto")), this.ganttBox,
      el("h2", { id: "failures-title" }, "Failed tasks"), this.failureBox,
      el("h2", {}, "Tasks"),
      el("div", { class: "controls" }, this.idFilter, this.stateFilter, this.shownNote),
      el("div", { class: "scroll", id: "tasks-wrap" }, table));
    this.drawDag(snapshot.edges);
    this.renderTable();
    this.dagBox.addEventListener("click", (event) => {
      const node = event.target.closest("rect.node");
      if (node) window.location.href = taskUrl(this.runId, this.tasks[Number(node.dataset.i)].task_id);
    });
  }

  // At most MAX_ROWS rows: a table of every task of a large run would take the
  // browser seconds to lay out, and the graph above already shows each one.
  renderTable() {
    const text = this.idFilter.value;
    const state = this.stateFilter.value;
    const shown = [];
    let matching = 0;
    this.tasks.forEach((task, n) => {
      if ((text && !task.task_id.includes(text)) || (state && task.state !== state)) return;
      matching += 1;
      if (shown.length < MAX_ROWS) shown.push(n);
    });
    this.tableBody.innerHTML = shown.map((n) => "<tr data-i=\"" + n + "\">" + this.rowHtml(this.tasks[n]) + "</tr>").join("");
    this.rows = new Map(shown.map((n, k) => [n, this.tableBody.children[k]]));
    this.shownNote.textContent = shown.length < this.tasks.length
      ? "showing " + shown.length + " of " + matching + " matching, " + this.tasks.length + " tasks" : "";
  }

  rowHtml(task) {
    const duration = task.started_at && task.finished_at ? seconds(task.finished_at - task.started_at) : "-";
    return "<td class=\"num\">" + (task.index + 1) + "</td>" +
      "<td class=\"id\"><a href=\"" + esc(taskUrl(this.runId, task.task_id)) + "\">" + esc(task.task_id) + "</a></td>" +
      "<td><span class=\"badge st-" + esc(task.state) + "\" data-state=\"" + esc(task.state) + "\">" + esc(task.state) + "</span></td>" +
      "<td class=\"num\">" + task.attempts + "</td><td>" + esc(task.tool || "") + "</td>" +
      "<td class=\"num\">" + duration + "</td><td class=\"num\">" + (task.exit_code === null ? "" : task.exit_code) + "</td>";
  }

  drawDag(edges) {
    const columns = new Map();
    for (let n = 0; n < this.tasks.length; n++) {
      const level = this.tasks[n].level || 0;
      if (!columns.has(level)) columns.set(level, []);
      columns.get(level).push(n);
    }
    const x = new Float64Array(this.tasks.length);
    const y = new Float64Array(this.tasks.length);
    const labelled = this.tasks.length <= LABELLED;
    const box = labelled ? FULL : COMPACT;
    let column = 0, tallest = 0, levels = 0;
    for (const level of [...columns.keys()].sort((a, b) => a - b)) {
      const members = columns.get(level);
      const left = PAD + levels * box.levelGap;
      levels += 1;
      members.forEach((n, k) => {
        x[n] = left + (column + Math.floor(k / box.perColumn)) * (box.w + box.colGap);
        y[n] = PAD + (k % box.perColumn) * (box.h + box.rowGap);
      });
      column += Math.ceil(members.length / box.perColumn);
      tallest = Math.max(tallest, Math.min(members.length, box.perColumn));
    }
    const width = PAD * 2 + column * (box.w + box.colGap) + levels * box.levelGap;
    const height = PAD * 2 + tallest * (box.h + box.rowGap);
    const parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + width + "\" height=\"" + height + "\">"];
    if (edges.length <= MAX_EDGES) {
      parts.push("<g class=\"edges\">");
      for (const [a, b] of edges) {
        const x1 = x[a] + box.w, y1 = y[a] + box.h / 2, x2 = x[b], y2 = y[b] + box.h / 2;
        const bend = (x2 - x1) / 2;
        parts.push("<path class=\"edge\" d=\"M" + x1 + " " + y1 + "C" + (x1 + bend) + " " + y1 + " " + (x2 - bend) + " " + y2 + " " + x2 + " " + y2 + "\"/>");
      }
      parts.push("</g>");
    }
    this.tasks.forEach((task, n) => {
      const label = task.task_id.length > 22 ? task.task_id.slice(0, 21) + "…" : task.task_id;
      parts.push("<rect class=\"node st-" + esc(task.state) + "\" data-i=\"" + n + "\" data-task=\"" + esc(task.task_id) +
        "\" data-state=\"" + esc(task.state) + "\" x=\"" + x[n] + "\" y=\"" + y[n] +
        "\" width=\"" + box.w + "\" height=\"" + box.h + "\"/>");
      if (labelled) parts.push("<text x=\"" + (x[n] + 5) + "\" y=\"" + (y[n] + 14) + "\">" + esc(label) + "</text>");
    });
    parts.push("</svg>");
    if (edges.length > MAX_EDGES) {
      this.dagBox.before(el("p", { class: "muted" }, edges.length + " edges: only the tasks are drawn, by level."));
    }
    this.dagBox.innerHTML = parts.join("");
    this.nodes = Array.from(this.dagBox.querySelectorAll("rect.node"));
  }

  renderSummary() {
    const run = this.run;
    const counts = {};
    for (const task of this.tasks) counts[task.state] = (counts[task.state] || 0) + 1;
    this.summary.replaceChildren(
      el("span", {}, "status ", badge(run.status)),
      el("span", {}, el("b", {}, "started "), when(run.started_at || run.created_at)),
      el("span", {}, el("b", {}, "duration "), seconds(runDuration(run, this.now()))),
      el("span", {}, el("b", {}, "workers "), run.max_workers === null ? "-" : run.max_workers),
      el("span", { id: "counts" }, el("b", {}, run.task_count + " tasks: "), countsText(counts)));
  }

  setTask(task) {
    const n = this.index.get(task.task_id);
    if (n === undefined) return;
    const old = this.tasks[n];
    task.level = old.level;
    this.tasks[n] = task;
    const node = this.nodes[n];
    if (node && old.state !== task.state) {
      node.setAttribute("class", "node st-" + task.state);
      node.dataset.state = task.state;
    }
    const row = this.rows.get(n);
    if (row) row.innerHTML = this.rowHtml(task);
  }

  renderFailures() {
    const failed = this.tasks.filter((task) => task.state === "failed");
    const title = document.getElementById("failures-title");
    title.textContent = "Failed tasks (" + failed.length + ")";
    if (!failed.length) {
      this.failureBox.replaceChildren(el("p", { class: "muted" }, "None."));
      return;
    }
    const cards = [];
    for (const task of failed) {
      const failure = this.failures.get(task.task_id);
      const card = el("div", { class: "failure", "data-task": task.task_id },
        el("h3", {}, el("a", { href: taskUrl(this.runId, task.task_id) }, task.task_id)));
      if (failure) {
        card.append(el("div", { class: "muted" }, describeEnd(failure)));
        appendTails(card, failure);
      }
      cards.push(card);
    }
    this.failureBox.replaceChildren(...cards);
  }

  scheduleGantt() {
    if (this.ganttPending) return;
    this.ganttPending = true;
    setTimeout(() => {
      this.ganttPending = false;
      this.renderGantt();
    }, 300);
  }

  renderGantt() {
    const attempts = [...this.attempts.values()].sort((a, b) => a.started_at - b.started_at);
    if (!attempts.length) {
      this.ganttBox.replaceChildren(el("p", { class: "muted" }, "No attempts yet."));
      return;
    }
    const now = this.now();
    const origin = Math.min(this.run.started_at || attempts[0].started_at, attempts[0].started_at);
    let end = this.run.finished_at || now;
    for (const a of attempts) end = Math.max(end, a.finished_at || now);
    const span = Math.max(end - origin, 0.001);
    const lanes = new Map();
    const spare = [];
    for (const a of attempts) {
      let lane = a.worker;
      if (lane === null) {
        let k = spare.findIndex((free) => free <= a.started_at);
        if (k < 0) { k = spare.length; spare.push(0); }
        spare[k] = a.finished_at || Infinity;
        lane = "lane " + k;
      }
      if (!lanes.has(lane)) lanes.set(lane, []);
      lanes.get(lane).push(a);
    }
    const names = [...lanes.keys()].sort((a, b) =>
      (typeof a === "number" ? a : 1e9) - (typeof b === "number" ? b : 1e9) || String(a).localeCompare(String(b)));
    // From the window, not the box: reading the box's size would lay out the whole page now.
    const width = Math.max(600, window.innerWidth - 60);
    const plot = width - LABEL_W - PAD;
    const height = AXIS_H + names.length * LANE_H + PAD;
    const scale = plot / span;
    const parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + width + "\" height=\"" + height + "\">"];
    names.forEach((name, k) => {
      const top = AXIS_H + k * LANE_H;
      parts.push("<rect class=\"lane" + (k % 2 ? " odd" : "") + "\" x=\"0\" y=\"" + top + "\" width=\"" + width + "\" height=\"" + LANE_H + "\"/>");
      parts.push("<text x=\"4\" y=\"" + (top + 13) + "\">" + esc(typeof name === "number" ? "worker " + name : name) + "</text>");
    });
    const step = niceStep(span / 8);
    for (let t = 0; t <= span; t += step) {
      const tx = LABEL_W + t * scale;
      parts.push("<line class=\"tick\" x1=\"" + tx + "\" y1=\"" + (AXIS_H - 4) + "\" x2=\"" + tx + "\" y2=\"" + height + "\"/>");
      if (tx < width - 40) {
        parts.push("<text x=\"" + (tx + 2) + "\" y=\"14\">" + (step < 1 ? Math.round(t * 1000) + "ms" : seconds(t)) + "</text>");
      }
    }
    this.bars = [];
    names.forEach((name, k) => {
      const top = AXIS_H + k * LANE_H + 2;
      for (const a of lanes.get(name)) {
        const x0 = LABEL_W + (a.started_at - origin) * scale;
        const w = Math.max(1, ((a.finished_at || now) - a.started_at) * scale);
        parts.push("<rect class=\"bar at-" + esc(a.status) + "\" data-b=\"" + this.bars.length + "\" x=\"" + x0.toFixed(1) + "\" y=\"" + top +
          "\" width=\"" + w.toFixed(1) + "\" height=\"" + (LANE_H - 4) + "\"/>");
        this.bars.push(a);
        if (w > 60) {
          parts.push("<text x=\"" + (x0 + 3).toFixed(1) + "\" y=\"" + (top + 11) + "\">" + esc(a.task_id.slice(0, Math.floor(w / 7))) + "</text>");
        }
      }
    });
    parts.push("</svg>");
    this.ganttBox.innerHTML = parts.join("");
    if (!this.ganttClick) {
      this.ganttClick = true;
      this.ganttBox.addEventListener("click", (event) => {
        const bar = event.target.closest("rect.bar");
        if (bar) window.location.href = taskUrl(this.runId, this.bars[Number(bar.dataset.b)].task_id);
      });
    }
  }

  // What the shared tooltip says over a node of the graph or a bar of the timeline.
  tipFor(target) {
    if (target.matches("rect.node")) {
      const task = this.tasks[Number(target.dataset.i)];
      return task.task_id + " — " + task.state;
    }
    if (target.matches("rect.bar")) {
      const a = this.bars[Number(target.dataset.b)];
      const end = a.finished_at || this.now();
      return a.task_id + " #" + a.attempt + " " + a.status + " " + seconds(end - a.started_at) +
        (a.exit_code !== null ? " exit " + a.exit_code : "");
    }
    return null;
  }

  follow(seq) {
    setLive(true, "live");
    const source = new EventSource("/api/runs/" + encodeURIComponent(this.runId) + "/live?after=" + seq);
    const ticker = setInterval(() => {
      this.renderSummary();
      this.scheduleGantt();
    }, 1000);
    source.addEventListener("update", (event) => {
      const changes = JSON.parse(event.data);
      this.clockSkew = changes.now - Date.now() / 1000;
      this.run = changes.run;
      for (const task of changes.tasks) this.setTask(task);
      for (const attempt of changes.attempts) this.attempts.set(attempt.task_id + "\u0000" + attempt.attempt, attempt);
      for (const failure of changes.failures) this.failures.set(failure.task_id, failure);
      this.renderSummary();
      if (changes.tasks.some((task) => task.state === "failed")) this.renderFailures();
      this.scheduleGantt();
    });
    source.addEventListener("end", () => {
      source.close();
      clearInterval(ticker);
      this.renderSummary();
      this.renderGantt();
      setLive(false, "finished");
    });
    source.onerror = () => setLive(false, "reconnecting");
  }
}

function niceStep(raw) {
  const power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function describeEnd(attempt) {
  const parts = ["attempt " + attempt.attempt, attempt.status];
  if (attempt.exit_code !== null && attempt.exit_code !== undefined) parts.push("exit " + attempt.exit_code);
  if (attempt.signal) parts.push("signal " + attempt.signal);
  if (attempt.timed_out) parts.push("timed out");
  if (attempt.error) parts.push(attempt.error);
  return parts.join(" · ");
}

function appendTails(parent, tails) {
  for (const name of ["stdout", "stderr"]) {
    const lines = tails[name + "_tail"];
    if (lines === null) {
      parent.append(el("div", { class: "label error" }, name + ": " + tails[name + "_unavailable"]));
    } else if (lines.length) {
      parent.append(el("div", { class: "label" }, name + " (last " + lines.length + " lines)"),
        el("pre", { class: "tail", "data-stream": name }, lines.join("\n")));
    } else {
      parent.append(el("div", { class: "label" }, "(no " + name + ")"));
    }
  }
}

// ------------------------------------------------------------------ a task

class TaskPage {
  constructor(runId, taskId) {
    this.runId = runId;
    this.taskId = taskId;
    this.source = null;
  }

  async start() {
    setCrumbs(["runs", "/"], [this.runId, runUrl(this.runId)], [this.taskId, null]);
    this.heading = el("h1", {}, this.taskId);
    this.state = el("div", { class: "summary" });
    this.attemptsBox = el("div", {});
    this.tailBox = el("div", { id: "tail" });
    this.log = el("pre", { class: "log", id: "log" });
    this.streamChoice = el("select", { id: "stream" }, el("option", { value: "out" }, "stdout"), el("option", { value: "err" }, "stderr"));
    this.autoScroll = el("input", { type: "checkbox", id: "autoscroll", checked: "" });
    this.streamChoice.addEventListener("change", () => this.followLog());
    main.replaceChildren(this.heading, this.state,
      el("h2", {}, "Attempts"), this.attemptsBox,
      el("h2", {}, "Output tail (latest attempt)"), this.tailBox,
      el("h2", {}, "Log"),
      el("div", { class: "controls" }, el("label", {}, "stream ", this.streamChoice),
        el("label", {}, this.autoScroll, " keep the end in view"), el("span", { id: "log-status", class: "muted" })),
      this.log);
    await this.refresh();
    this.followLog();
  }

  async refresh() {
    const detail = await getJSON("/api/runs/" + encodeURIComponent(this.runId) + "/task?id=" + encodeURIComponent(this.taskId));
    const task = detail.task;
    this.state.replaceChildren(
      el("span", { id: "task-state" }, "state ", badge(task.state)),
      el("span", {}, el("b", {}, "attempts "), task.attempts),
      el("span", {}, el("b", {}, "tool "), task.tool || "-"),
      el("span", {}, el("b", {}, "duration "), task.started_at && task.finished_at ? seconds(task.finished_at - task.started_at) : "-"));
    const rows = detail.attempts.map((a) => el("tr", {},
      el("td", { class: "num" }, a.attempt), el("td", {}, badge(a.status)), el("td", {}, a.tool || "-"),
      el("td", { class: "num" }, a.worker === null ? "-" : a.worker), el("td", {}, when(a.started_at)),
      el("td", { class: "num" }, seconds((a.finished_at || detail.now) - a.started_at)),
      el("td", {}, describeEnd(a)),
      el("td", { class: "id" }, a.argv ? el("code", {}, a.argv.join(" ")) : "")));
    this.attemptsBox.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, "status"), el("th", {}, "tool"),
        el("th", { class: "num" }, "worker"), el("th", {}, "started"), el("th", { class: "num" }, "duration"),
        el("th", {}, "end"), el("th", {}, "command"))),
      el("tbody", {}, ...rows)));
    this.tailBox.replaceChildren();
    if (detail.tail) appendTails(this.tailBox, detail.tail);
    else this.tailBox.append(el("p", { class: "muted" }, "No attempt yet."));
    setLive(!FINISHED_TASK.has(task.state), FINISHED_TASK.has(task.state) ? "finished" : "live");
    if (!FINISHED_TASK.has(task.state)) setTimeout(() => this.refresh().catch(fail), 1000);
  }

  followLog() {
    if (this.source) this.source.close();
    this.log.textContent = "";
    const status = document.getElementById("log-status");
    status.textContent = "following";
    const url = "/api/runs/" + encodeURIComponent(this.runId) + "/follow?task=" + encodeURIComponent(this.taskId) +
      "&stream=" + this.streamChoice.value;
    const source = this.source = new EventSource(url);
    source.addEventListener("attempt", (event) => {
      const { attempt } = JSON.parse(event.data);
      this.append("── attempt " + attempt + " ──\n");
    });
    source.addEventListener("chunk", (event) => {
      const chunk = JSON.parse(event.data);
      if (chunk.error) this.append("[" + chunk.error + "]\n");
      else if (chunk.skipped) this.append("[… the first " + chunk.skipped + " bytes are not shown …]\n");
      else this.append(chunk.text);
    });
    source.addEventListener("end", () => {
      source.close();
      status.textContent = "complete";
    });
  }

  append(text) {
    this.log.append(text);
    if (this.autoScroll.checked) this.log.scrollTop = this.log.scrollHeight;
  }
}

// ------------------------------------------------------------------ tooltips

// One tooltip for the shapes of a run's page, its text made when the pointer is
// over one, instead of a <title> (or an attribute) in each of tens of thousands.
const tip = el("div", { id: "tip", class: "tip", hidden: "" });
document.body.append(tip);
let tipSource = null;
document.addEventListener("mouseover", (event) => {
  const target = event.target.closest ? event.target.closest("rect.node, rect.bar") : null;
  const text = target && tipSource ? tipSource.tipFor(target) : null;
  tip.hidden = text === null;
  if (text !== null) tip.textContent = text;
});
document.addEventListener("mousemove", (event) => {
  if (!tip.hidden) {
    tip.style.left = event.pageX + 12 + "px";
    tip.style.top = event.pageY + 12 + "px";
  }
});

// ------------------------------------------------------------------ routing

function route() {
  const path = window.location.pathname;
  const runMatch = path.match(/^\/runs\/([^/]+)(\/task)?$/);
  if (!runMatch) return showRuns();
  const runId = decodeURIComponent(runMatch[1]);
  if (runMatch[2]) {
    const taskId = new URLSearchParams(window.location.search).get("id") || "";
    return new TaskPage(runId, taskId).start().catch(fail);
  }
  return new RunPage(runId).start().catch(fail);
}

route();
