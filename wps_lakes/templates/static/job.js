/* A job's page: follows the job live (status JSON and /jobs/{id}/files), draws the training curves
   from the metrics on a canvas, and dismisses the job (with the token, when the service needs one). */
"use strict";
(function () {
  const POLL_MS = 2000;
  const NOT_SCORES = new Set(["epoch", "iter", "time_s", "lr", "data_wait_fraction", "train_images_per_s",
                              "valid_s"]);
  const COLORS = ["#e76f51", "#2a9d8f", "#264653", "#e9c46a", "#8338ec", "#3a86ff"];
  let jobId = "";
  let timer = null;
  let finished = false;

  function drawPanel(ctx, x0, y0, width, height, title, series, fixedMax) {
    const pad = {left: 44, right: 10, top: 22, bottom: 26};
    const w = width - pad.left - pad.right;
    const h = height - pad.top - pad.bottom;
    const points = series.flatMap((s) => s.points);
    if (!points.length) return;
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const xmin = Math.min(...xs), xmax = Math.max(...xs, xmin + 1);
    const ymin = fixedMax ? 0 : Math.min(0, ...ys), ymax = fixedMax || Math.max(...ys, ymin + 1e-9) * 1.05;
    const px = (x) => x0 + pad.left + (x - xmin) / (xmax - xmin) * w;
    const py = (y) => y0 + pad.top + h - (y - ymin) / (ymax - ymin) * h;
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
    ctx.strokeRect(x0 + pad.left, y0 + pad.top, w, h);
    ctx.fillText(title, x0 + pad.left, y0 + 14);
    for (let i = 0; i <= 4; i++) {
      const y = ymin + (ymax - ymin) * i / 4;
      ctx.fillText(y.toPrecision(2), x0 + 2, py(y) + 4);
    }
    ctx.fillText("epoch " + xmin, x0 + pad.left, y0 + height - 8);
    ctx.fillText(String(xmax), x0 + pad.left + w - 12, y0 + height - 8);
    series.forEach((s, i) => {
      ctx.strokeStyle = ctx.fillStyle = COLORS[i % COLORS.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      s.points.forEach((p, j) => { if (j) ctx.lineTo(px(p[0]), py(p[1])); else ctx.moveTo(px(p[0]), py(p[1])); });
      ctx.stroke();
      s.points.forEach((p) => { ctx.beginPath(); ctx.arc(px(p[0]), py(p[1]), 2.5, 0, 7); ctx.fill(); });
      ctx.fillText(s.name, x0 + pad.left + 8 + 90 * i, y0 + pad.top + 14);
    });
  }

  function drawCurves(metrics) {
    const figure = document.getElementById("curves-figure");
    const canvas = document.getElementById("curves");
    if (!metrics || !metrics.length) return;
    figure.hidden = false;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const series = (key) => ({name: key, points: metrics.filter((m) => typeof m[key] === "number")
                                                         .map((m) => [m.epoch, m[key]])});
    const losses = Object.keys(metrics[metrics.length - 1]).filter((k) => k.startsWith("train_loss"));
    const scores = Object.keys(metrics[metrics.length - 1])
      .filter((k) => !NOT_SCORES.has(k) && !k.startsWith("train_"));
    const half = canvas.width / 2;
    drawPanel(ctx, 0, 0, half, canvas.height, "training loss", losses.slice(0, 4).map(series), 0);
    drawPanel(ctx, half, 0, half, canvas.height, "validation scores", scores.slice(0, 5).map(series), 1.02);
    canvas.dataset.epochs = String(metrics.length);
  }

  function showPictures(pictures) {
    const box = document.getElementById("pictures");
    const shown = {};
    box.querySelectorAll("img").forEach((img) => { shown[img.getAttribute("src").split("?")[0]] = img; });
    for (const picture of pictures) {
      const src = picture.href + "?v=" + picture.modified;
      const img = shown[picture.href];
      if (img) {
        if (img.getAttribute("src") !== src) img.setAttribute("src", src);
        continue;
      }
      const figure = document.createElement("figure");
      const image = document.createElement("img");
      image.src = src;
      image.alt = picture.title;
      const caption = document.createElement("figcaption");
      caption.textContent = picture.title;
      figure.append(image, caption);
      box.appendChild(figure);
    }
  }

  function showList(id, items, render) {
    const list = document.getElementById(id);
    list.replaceChildren(...items.map((item) => {
      const li = document.createElement("li");
      render(li, item);
      return li;
    }));
  }

  function showFiles(files) {
    showPictures(files.pictures || []);
    drawCurves(files.metrics || []);
    document.getElementById("no-pictures").hidden = (files.pictures || []).length + (files.metrics || []).length > 0;
    showList("checkpoints", files.checkpoints || [], (li, c) => {
      const a = document.createElement("a");
      a.href = c.href; a.textContent = c.name; a.setAttribute("download", "");
      const size = document.createElement("small");
      size.textContent = " " + (c.size / 1048576).toFixed(1) + " MB";
      li.append(a, size);
    });
    showList("outputs", files.outputs || [], (li, o) => {
      li.append(o.id + ": ");
      if (o.href) {
        const a = document.createElement("a");
        a.href = o.href; a.textContent = o.href.split("/").pop();
        li.appendChild(a);
      } else {
        const code = document.createElement("code");
        code.textContent = JSON.stringify(o.value);
        li.appendChild(code);
      }
    });
    document.getElementById("log-section").hidden = !files.log;
    if (files.log_href) document.getElementById("log-link").href = files.log_href;
    const log = document.getElementById("log");
    if (log.textContent !== files.log) {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = files.log || "";
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
  }

  function showStatus(status) {
    const state = document.getElementById("state");
    state.textContent = status.status;
    state.className = "state state-" + status.status;
    Lakes.setBar(document.getElementById("bar"), status.progress);
    Lakes.text(document.getElementById("message"), status.message);
    Lakes.text(document.getElementById("updated"), status.updated || "");
    finished = ["successful", "failed", "dismissed"].includes(status.status);
  }

  function gone(text) {
    const state = document.getElementById("state");
    state.textContent = "dismissed";
    state.className = "state state-dismissed";
    Lakes.text(document.getElementById("message"), text);
    document.getElementById("dismiss").disabled = true;
    stop();
  }

  function stop() { if (timer) { clearInterval(timer); timer = null; } }

  async function poll() {
    const base = Lakes.root + "/jobs/" + encodeURIComponent(jobId);
    try {
      const status = await Lakes.json(base + "?f=json");
      if (status.status === 404) { gone(Lakes.problem(status)); return; }
      if (status.ok) showStatus(status.body);
      const files = await Lakes.json(base + "/files");
      if (files.ok) showFiles(files.body);
    } catch (error) {
      Lakes.text(document.getElementById("dismiss-state"), "The service does not answer; retrying.");
    }
    if (finished) stop();
  }

  async function dismiss() {
    const state = document.getElementById("dismiss-state");
    state.textContent = "dismissing...";
    const result = await Lakes.json(Lakes.root + "/jobs/" + encodeURIComponent(jobId), {method: "DELETE"});
    if (result.ok) {
      state.textContent = "dismissed";
      gone((result.body && result.body.message) || "Dismissed");
    } else {
      state.textContent = "Dismiss refused: " + Lakes.problem(result);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    jobId = document.getElementById("job").dataset.job;
    const initial = JSON.parse(document.getElementById("files-data").textContent);
    drawCurves(initial.metrics || []);
    document.getElementById("dismiss").addEventListener("click", dismiss);
    finished = ["successful", "failed", "dismissed"].includes(document.getElementById("state").textContent);
    poll();
    if (!finished) timer = setInterval(poll, POLL_MS);
  });
})();
