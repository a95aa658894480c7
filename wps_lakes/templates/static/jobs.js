/* The jobs page: polls the JSON of /jobs and updates the table in place (no reload). */
"use strict";
(function () {
  const POLL_MS = 2000;
  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text == null ? "" : String(text);
    return td;
  }
  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }
  function bar(progress) {
    const outer = document.createElement("div");
    outer.className = "bar";
    outer.setAttribute("role", "progressbar");
    outer.setAttribute("aria-valuemin", "0");
    outer.setAttribute("aria-valuemax", "100");
    outer.appendChild(document.createElement("div"));
    outer.appendChild(document.createElement("span"));
    Lakes.setBar(outer, progress);
    return outer;
  }
  function row(job) {
    const tr = document.createElement("tr");
    tr.dataset.job = job.jobID;
    const id = document.createElement("td");
    id.appendChild(link(Lakes.root + "/jobs/" + encodeURIComponent(job.jobID) + "?f=html", job.jobID.slice(0, 8)));
    const process = document.createElement("td");
    process.appendChild(link(Lakes.root + "/processes/" + encodeURIComponent(job.processID) + "?f=html",
                             job.processID));
    const progress = document.createElement("td");
    progress.appendChild(bar(job.progress));
    tr.append(id, process, cell(job.owner || "you", "owner"), cell(job.status, "state state-" + job.status), progress,
              cell(job.message, "message"), cell(job.created, "created"));
    return tr;
  }
  function update(tr, job) {
    const state = tr.querySelector(".state");
    if (state.textContent !== job.status) {
      state.textContent = job.status;
      state.className = "state state-" + job.status;
    }
    Lakes.setBar(tr.querySelector(".bar"), job.progress);
    Lakes.text(tr.querySelector(".message"), job.message);
  }
  async function poll() {
    const note = document.getElementById("jobs-note");
    let result;
    try {
      result = await Lakes.json(Lakes.root + "/jobs?f=json&limit=50");
    } catch (error) {
      note.textContent = "The service does not answer (" + error + "); retrying.";
      return;
    }
    if (!result.ok) {
      note.textContent = (result.status === 401 || result.status === 403)
        ? "This service needs an access token to list jobs: give yours above (" + Lakes.problem(result) + ")."
        : "Listing the jobs failed: " + Lakes.problem(result);
      return;
    }
    note.textContent = "Updated live (" + new Date().toLocaleTimeString() + ").";
    const tbody = document.querySelector("#jobs tbody");
    const rows = {};
    tbody.querySelectorAll("tr[data-job]").forEach((tr) => { rows[tr.dataset.job] = tr; });
    const seen = new Set();
    let previous = null;
    for (const job of result.body.jobs || []) {
      seen.add(job.jobID);
      let tr = rows[job.jobID];
      if (tr) update(tr, job); else tr = row(job);
      if (previous ? previous.nextSibling !== tr : tbody.firstChild !== tr) {
        tbody.insertBefore(tr, previous ? previous.nextSibling : tbody.firstChild);
      }
      previous = tr;
    }
    Object.keys(rows).forEach((id) => { if (!seen.has(id)) rows[id].remove(); });
    document.getElementById("jobs-empty").hidden = seen.size > 0;
  }
  document.addEventListener("DOMContentLoaded", () => {
    poll();
    setInterval(poll, POLL_MS);
    document.addEventListener("lakes-token", poll);
  });
})();
