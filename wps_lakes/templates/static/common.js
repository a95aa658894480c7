/* Shared by the pages: the access token (kept in this tab's sessionStorage, sent as a Bearer token)
   and fetching JSON from the service. */
"use strict";
const Lakes = {
  root: "",
  token() { return sessionStorage.getItem("wps-lakes-token") || ""; },
  headers(extra) {
    const headers = Object.assign({"Accept": "application/json"}, extra || {});
    const token = Lakes.token();
    if (token) headers["Authorization"] = "Bearer " + token;
    return headers;
  },
  async json(url, options) {
    const response = await fetch(url, Object.assign({cache: "no-store"}, options || {},
                                                     {headers: Lakes.headers((options || {}).headers)}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return {status: response.status, ok: response.ok, body: body, response: response};
  },
  text(element, value) { element.textContent = value == null ? "" : String(value); },
  setBar(bar, percent) {
    const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
    bar.setAttribute("aria-valuenow", String(value));
    bar.firstElementChild.style.width = value + "%";
    bar.querySelector("span").textContent = value + "%";
  },
  problem(result) {
    const body = result.body || {};
    return body.detail || body.title || ("HTTP " + result.status);
  },
};
document.addEventListener("DOMContentLoaded", () => {
  Lakes.root = document.body.dataset.root || "";
  const form = document.getElementById("token-form");
  const field = document.getElementById("token");
  const state = document.getElementById("token-state");
  field.value = Lakes.token();
  if (Lakes.token()) state.textContent = "token set";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("wps-lakes-token", field.value.trim());
    state.textContent = field.value.trim() ? "token set" : "no token";
    document.dispatchEvent(new Event("lakes-token"));
  });
});
