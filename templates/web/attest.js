// Attest's one script, served at /assets/attest.js. Every page works without it; it only adds
// suggestions as you type in the side panel: groups and applications by name, then the chosen
// application's roles. It asks the JSON API with the page's own session.
"use strict";

function debounce(wait, fn) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), wait); };
}

function fill(list, options) {
  list.replaceChildren(...options.map(([value, label]) => {
    const option = document.createElement("option");
    option.value = value;
    if (label) option.label = label;
    return option;
  }));
}

async function json(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
  return response.ok ? response.json() : null;
}

// <input data-suggest="groups|applications" list="…">: the matches of what is typed.
for (const input of document.querySelectorAll("input[data-suggest]")) {
  const list = document.getElementById(input.getAttribute("list"));
  if (!list) continue;
  const found = new Map();
  input.addEventListener("input", debounce(150, async () => {
    const q = input.value.trim();
    if (q.length < 2) return;
    const page = await json(`/api/v1/${input.dataset.suggest}?q=${encodeURIComponent(q)}`);
    if (!page) return;
    found.clear();
    for (const r of page.resources) found.set(r.resource.display_name, r.resource);
    fill(list, page.resources.slice(0, 20).map((r) => [r.resource.display_name, r.resource.description || ""]));
  }));
  // An application chosen: its roles, by name, for the role field beside it.
  const roles = input.dataset.roles && document.getElementById(input.dataset.roles);
  if (!roles) continue;
  input.addEventListener("change", async () => {
    const app = found.get(input.value.trim());
    if (!app) return;
    const detail = await json(`/api/v1/resources/${app.id}`);
    if (!detail) return;
    fill(roles, detail.entitlements.filter((e) => e.key.startsWith("role:")).map((e) => [e.display_name, ""]));
  });
}
