/* A process page's form: builds the OGC API execute request from the process description (a file
   uploaded inline, or a URL, for each complex input), posts it asynchronously, opens the job's page. */
"use strict";
(function () {
  const fields = JSON.parse(document.getElementById("fields-data").textContent);
  const extensions = JSON.parse(document.getElementById("extensions-data").textContent);

  function base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function formatFor(field, name) {
    const dot = name.lastIndexOf(".");
    const types = dot >= 0 ? (extensions[name.slice(dot).toLowerCase()] || []) : [];
    for (const type of types) {
      const format = field.formats.find((f) => f.mediaType === type);
      if (format) return format;
    }
    return field.formats[0];
  }

  async function complexValue(field, form) {
    const file = form.querySelector("#in-" + CSS.escape(field.id)).files[0];
    const url = form.querySelector("#url-" + CSS.escape(field.id)).value.trim();
    if (url) return {href: url};
    if (!file) return undefined;
    const format = formatFor(field, file.name);
    if (format.json) {
      const text = await file.text();
      try {
        return {value: JSON.parse(text), mediaType: format.mediaType};
      } catch (error) {
        throw new Error(field.id + ": " + file.name + " is not JSON (" + error.message + ")");
      }
    }
    if (format.binary) {
      return {value: base64(await file.arrayBuffer()), mediaType: format.mediaType, encoding: "base64"};
    }
    return {value: await file.text(), mediaType: format.mediaType};
  }

  function literalValue(field, form) {
    const raw = form.querySelector("#in-" + CSS.escape(field.id)).value.trim();
    if (raw === "") return undefined;
    if (field.kind === "boolean") return raw === "true";
    if (field.type === "integer") return parseInt(raw, 10);
    if (field.type === "number") return parseFloat(raw);
    return raw;
  }

  async function submit(event) {
    event.preventDefault();
    const form = event.target;
    const state = document.getElementById("run-state");
    const button = document.getElementById("submit");
    const inputs = {};
    try {
      for (const field of fields) {
        const value = field.kind === "complex" ? await complexValue(field, form) : literalValue(field, form);
        if (value !== undefined) inputs[field.id] = value;
        else if (field.required) throw new Error(field.id + " is required");
      }
    } catch (error) {
      state.textContent = error.message;
      return;
    }
    button.disabled = true;
    state.textContent = "sending...";
    const process = form.dataset.process;
    try {
      const result = await Lakes.json(Lakes.root + "/processes/" + encodeURIComponent(process) + "/execution", {
        method: "POST", body: JSON.stringify({inputs: inputs, response: "document"}),
        headers: {"Content-Type": "application/json", "Prefer": "respond-async"}});
      if (result.status === 201 && result.body && result.body.jobID) {
        state.textContent = "job " + result.body.jobID + " accepted";
        window.location.href = Lakes.root + "/jobs/" + encodeURIComponent(result.body.jobID) + "?f=html";
        return;
      }
      state.textContent = "Refused: " + Lakes.problem(result);
    } catch (error) {
      state.textContent = "The service does not answer: " + error;
    }
    button.disabled = false;
  }

  document.getElementById("run").addEventListener("submit", submit);
})();
