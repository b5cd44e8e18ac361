// AttenCraft's web app: plain modern JavaScript, no build step, no external requests. It calls the API on its own
// origin with the key entered once per browser session, and follows jobs and generations through their
// server-sent event streams (read with fetch, because EventSource cannot send the key), resuming after a drop.
"use strict";

const KEY_STORAGE = "attencraft-api-key";
const COLOURS = ["#ff5a5a", "#3fb6ff", "#ffd23f", "#5dd27a", "#c77dff", "#ff9f43", "#2ee6d6", "#ff6ec7"];
const STATUSES = ["queued", "masking", "estimating", "training", "saving", "succeeded", "failed", "canceled"];
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const RECONNECT_MS = 1000;

const $ = (selector, root = document) => root.querySelector(selector);
const view = () => $("#view");
let leaveView = () => {};  // the current view's clean-up (its event streams), run when the route changes
const openStreams = new Set();

class Problem extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) element.append(child);
  }
  return element;
}

// ---------------------------------------------------------------- the key and the API

const key = () => sessionStorage.getItem(KEY_STORAGE);

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${key()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: `The server answered ${response.status}.` }));
    if (response.status === 401) askForKey(problem.detail);
    throw new Problem(response.status, problem);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();

function askForKey(sentence = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  leaveView();
  view().replaceChildren();
  $("#forget-key").hidden = true;
  $("#key-form").hidden = false;
  $("#key-error").textContent = sentence;
  $("#api-key").setAttribute("aria-invalid", sentence ? "true" : "false");
  $("#api-key").focus();
}

async function useKey(event) {
  event.preventDefault();
  const entered = $("#api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, entered);
  try {
    await getJson("/jobs?limit=1");
  } catch (error) {
    if (error instanceof Problem && error.status === 401) return;  // askForKey showed the API's sentence
    throw error;
  }
  $("#api-key").value = "";
  $("#key-form").hidden = true;
  $("#forget-key").hidden = false;
  route();
}

// ---------------------------------------------------------------- server-sent events

// Follows a text/event-stream until its `end` event: each event goes to onEvent; a dropped connection reconnects
// with Last-Event-ID, so nothing is missed. Resolves with the end event's data.
async function follow(path, onEvent) {
  let lastEventId = null;
  for (;;) {
    const controller = new AbortController();
    openStreams.add(controller);
    try {
      const headers = { Accept: "text/event-stream", ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}) };
      const response = await api(path, { headers, signal: controller.signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = { name: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (event.data.length) {
              if (event.id) lastEventId = event.id;
              const data = JSON.parse(event.data.join("\n"));
              onEvent(event.name, data);
              if (event.name === "end") return data;
            }
            event = { name: "message", data: [], id: null };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.name = text;
            else if (field === "data") event.data.push(text);
            else if (field === "id") event.id = text;
          }
        }
      }
    } catch (error) {
      if (error instanceof Problem) throw error;
      if (controller.signal.reason === "left") return null;  // the page moved on: stop following
    } finally {
      openStreams.delete(controller);
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));  // dropped: reconnect and catch up
  }
}

function stopStreams() {
  for (const controller of openStreams) controller.abort("left");
}

// What a test (or a flaky network) does to the page: drop every open stream; the page reconnects by itself.
window.attencraftDropStreams = () => {
  for (const controller of openStreams) controller.abort("dropped");
};

// ---------------------------------------------------------------- problems beside their fields

function clearErrors(form) {
  for (const element of form.querySelectorAll(".field-error")) element.textContent = "";
  for (const element of form.querySelectorAll("[aria-invalid=true]")) element.setAttribute("aria-invalid", "false");
}

// The API's sentence beside the field it concerns (problem.errors[].field, e.g. concepts.1, options.steps).
function showProblem(form, error, fieldOf) {
  if (!(error instanceof Problem)) throw error;
  const fields = (error.problem.errors || []).map((item) => item.field);
  const target = fieldOf(fields[0] || "") || "general";
  const slot = $(`#error-${target}`, form) || $("#error-general", form);
  slot.textContent = error.problem.detail;
  const control = $(`[data-field=${target}]`, form);
  if (control) control.setAttribute("aria-invalid", "true");
  return { target, fields };
}

// ---------------------------------------------------------------- jobs list

async function jobsView() {
  const status = h("select", { id: "status-filter" },
    h("option", { value: "", text: "All" }), STATUSES.map((s) => h("option", { value: s, text: s })));
  const search = h("input", { id: "concept-search", type: "text", placeholder: "cat" });
  const list = h("ul", { class: "jobs", "aria-label": "Jobs" });
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: "Load more" });
  let cursor = null;
  let jobs = [];

  const render = () => {
    const wanted = search.value.trim().toLowerCase();
    const shown = jobs.filter((job) => !wanted || job.concepts.some((c) => c.name.includes(wanted)));
    list.replaceChildren(...shown.map((job) => h("li", {},
      h("a", { href: `#/jobs/${job.id}`, text: job.concepts.map((c) => c.name).join(" + ") }),
      h("span", { class: `status ${job.status}`, text: job.status }),
      h("span", { class: "hint", text: `${job.progress.step}/${job.progress.total} steps` }),
      h("span", { class: "hint", text: new Date(job.created_at).toLocaleString() }))));
    if (!shown.length) list.append(h("li", { class: "hint", text: jobs.length ? "No job matches." : "No jobs yet." }));
  };
  const load = async (reset) => {
    if (reset) { cursor = null; jobs = []; }
    const query = new URLSearchParams({ limit: "50" });
    if (status.value) query.set("status", status.value);
    if (cursor) query.set("cursor", cursor);
    const page = await getJson(`/jobs?${query}`);
    jobs = jobs.concat(page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    render();
  };
  status.addEventListener("change", () => load(true));
  search.addEventListener("input", render);
  more.addEventListener("click", () => load(false));

  view().replaceChildren(h("section", { class: "card" },
    h("div", { class: "row" }, h("h1", { text: "Jobs" }), h("a", { href: "#/new", text: "New job" })),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "status-filter", text: "Status" }), status),
      h("div", {}, h("label", { for: "concept-search", text: "Search by concept name" }), search)),
    list, more));
  await load(true);
}

// ---------------------------------------------------------------- new job

let openapi = null;
const schema = async () => (openapi = openapi || (await (await fetch("/openapi.json")).json()));

// One control per JobOptions property, from the API's own schema: new options appear here as the API gains them.
// An optional setting (`X | null`) offers "default", which sends nothing and keeps the server's choice.
function optionControl(name, property) {
  const id = `option-${name}`;
  const variants = property.anyOf || [property];
  const nullable = variants.some((variant) => variant.type === "null");
  let resolved = variants.find((variant) => variant.type !== "null") || property;
  if (resolved.$ref) resolved = openapi.components.schemas[resolved.$ref.split("/").pop()];
  const label = h("label", { for: id, text: (property.title || name).replace(/_/g, " ") });
  const hint = property.description ? h("p", { class: "hint", id: `${id}-hint`, text: property.description }) : null;
  const initial = property.default ?? "";
  const choices = (values) => h("select", { id },
    nullable ? h("option", { value: "", text: "default" }) : null,
    values.map(([value, text]) => h("option", { value, text })));
  let control;
  let kind = resolved.type || "string";
  if (resolved.enum) {
    control = choices(resolved.enum.map((value) => [value, value]));
    control.value = initial;
  } else if (resolved.type === "boolean" && nullable) {
    control = choices([["true", "yes"], ["false", "no"]]);
    control.value = initial === "" ? "" : String(initial);
  } else if (resolved.type === "boolean") {
    control = h("input", { id, type: "checkbox", checked: initial === true });
    kind = "checkbox";
  } else if (resolved.type === "integer" || resolved.type === "number") {
    control = h("input", { id, type: "number", min: resolved.minimum, max: resolved.maximum,
      step: resolved.type === "integer" ? 1 : "any", value: initial, placeholder: nullable ? "default" : null });
  } else {
    control = h("input", { id, type: "text", value: initial, placeholder: nullable ? "default" : null });
  }
  control.dataset.option = name;
  control.dataset.kind = kind;
  control.setAttribute("data-field", `options-${name}`);
  control.setAttribute("aria-describedby", `${hint ? `${id}-hint ` : ""}error-options-${name}`);
  return h("div", {}, label, control, hint, h("p", { class: "field-error", id: `error-options-${name}`, role: "alert" }));
}

function optionsValue(form) {
  const options = {};
  for (const control of form.querySelectorAll("[data-option]")) {
    const { option, kind } = control.dataset;
    if (kind === "checkbox") options[option] = control.checked;
    else if (control.value === "") continue;
    else if (kind === "boolean") options[option] = control.value === "true";
    else if (kind === "integer" || kind === "number") options[option] = Number(control.value);
    else options[option] = control.value;
  }
  return options;
}

async function newJobView() {
  const document_ = await schema();
  const jobOptions = document_.components.schemas.JobOptions;
  const concepts = [];
  const photo = h("input", { id: "photo", type: "file", accept: "image/png,image/jpeg,image/webp",
    "data-field": "image", "aria-describedby": "error-image" });
  const preview = h("img", { alt: "", hidden: true });
  const drop = h("div", { class: "dropzone" },
    h("label", { for: "photo", text: "Photo (drop it here or choose a file)" }), photo, preview);
  const conceptInput = h("input", { id: "concept-input", type: "text", placeholder: "cat", autocomplete: "off",
    "aria-describedby": "concepts-hint error-concepts" });
  const chips = h("ul", { class: "chips", "aria-label": "Concepts added", "data-field": "concepts" });
  const maskFields = h("div", {});
  const form = h("form", { class: "card", novalidate: true });

  const renderConcepts = () => {
    chips.replaceChildren(...concepts.map((name, index) => h("li", { class: "chip", "data-index": index },
      h("span", { text: name }),
      h("button", { type: "button", "aria-label": `Remove ${name}`, text: "×", onclick: () => {
        concepts.splice(index, 1);
        renderConcepts();
      } }))));
    // keep files already chosen for concepts that stay
    const chosen = Object.fromEntries([...maskFields.querySelectorAll("input")].map((i) => [i.dataset.concept, i]));
    maskFields.replaceChildren(...concepts.map((name, index) => chosen[name] ? chosen[name].parentElement :
      h("div", {}, h("label", { for: `mask-${index}`, text: `Mask for ${name} (optional)` }),
        h("input", { id: `mask-${index}`, type: "file", accept: "image/png,image/jpeg,image/webp",
          "data-concept": name }))));
  };
  const addConcept = () => {
    const name = conceptInput.value.trim();
    if (!name) return;
    concepts.push(name);
    conceptInput.value = "";
    renderConcepts();
    conceptInput.focus();
  };
  conceptInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addConcept(); }
  });
  const showPhoto = () => {
    const file = photo.files[0];
    preview.hidden = !file;
    if (file) { preview.src = URL.createObjectURL(file); preview.alt = `Preview of ${file.name}`; }
  };
  photo.addEventListener("change", showPhoto);
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) { photo.files = event.dataTransfer.files; showPhoto(); }
  });

  const webhook = h("input", { id: "webhook", type: "url", placeholder: "https://example.com/hooks/attencraft",
    "data-field": "webhook_url", "aria-describedby": "error-webhook_url" });
  const advanced = h("details", {}, h("summary", { text: "Advanced: method and training options" }),
    Object.entries(jobOptions.properties).map(([name, property]) => optionControl(name, property)));
  const submit = h("button", { type: "submit", id: "submit-job", text: "Start training" });

  form.append(
    h("h1", { text: "New job" }),
    drop, h("p", { class: "field-error", id: "error-image", role: "alert" }),
    h("label", { for: "concept-input", text: "Concepts" }),
    h("p", { class: "hint", id: "concepts-hint", text: "One class name per thing in the photo (2 or more), e.g. cat, dog. Press Enter to add." }),
    h("div", { class: "row" }, h("div", {}, conceptInput),
      h("button", { type: "button", class: "secondary", text: "Add concept", onclick: addConcept })),
    chips, h("p", { class: "field-error", id: "error-concepts", role: "alert" }),
    h("fieldset", {}, h("legend", { text: "Masks (optional: one per concept, white where the concept is)" }),
      maskFields, h("p", { class: "field-error", id: "error-masks", role: "alert" })),
    advanced, h("p", { class: "field-error", id: "error-options", role: "alert" }),
    h("label", { for: "webhook", text: "Webhook URL (optional)" }), webhook,
    h("p", { class: "field-error", id: "error-webhook_url", role: "alert" }),
    h("p", { class: "field-error", id: "error-general", role: "alert" }),
    submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (conceptInput.value.trim()) addConcept();
    const body = new FormData();
    if (photo.files[0]) body.append("image", photo.files[0]);
    for (const name of concepts) body.append("concepts", name);
    for (const input of maskFields.querySelectorAll("input")) if (input.files[0]) body.append("masks", input.files[0]);
    body.append("options", JSON.stringify(optionsValue(form)));
    if (webhook.value.trim()) body.append("webhook_url", webhook.value.trim());
    submit.disabled = true;
    try {
      const job = await (await api("/jobs", { method: "POST", body })).json();
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      const { target, fields } = showProblem(form, error, fieldOfJobForm);
      if (target.startsWith("options")) advanced.open = true;
      const index = /^concepts\.(\d+)/.exec(fields[0] || "");
      if (index) chips.children[Number(index[1])]?.setAttribute("aria-invalid", "true");
    } finally {
      submit.disabled = false;
    }
  });
  view().replaceChildren(form);
  renderConcepts();
}

function fieldOfJobForm(field) {
  const [head, detail] = field.split(".");
  if (head === "options") return detail && document.getElementById(`error-options-${detail}`) ? `options-${detail}` : "options";
  if (head === "initializers") return "concepts";
  return ["image", "concepts", "masks", "webhook_url"].includes(head) ? head : null;
}

// ---------------------------------------------------------------- job page

function lossChart(losses) {
  const width = 600;
  const height = 200;
  const pad = 30;
  const series = [["reconstruction", "L_rec", "#2656c9"], ["attention", "L_attn", "#d0402b"]];
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const last = losses[losses.length - 1];
  svg.setAttribute("aria-label", losses.length
    ? `Loss curves over ${losses.length} steps; last step ${last.step}: L_rec ${last.reconstruction.toFixed(4)}, L_attn ${last.attention.toFixed(4)}`
    : "No training steps yet");
  if (!losses.length) return svg;
  const maxStep = Math.max(...losses.map((l) => l.step), 2);
  const add = (tag, attributes, text) => {
    const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    if (text) element.textContent = text;
    svg.append(element);
  };
  add("line", { x1: pad, y1: height - pad, x2: width - 5, y2: height - pad, stroke: "#999" });
  add("text", { x: width - 5, y: height - 8, "text-anchor": "end", "font-size": 12 }, `step ${maxStep}`);
  series.forEach(([field, name, colour], index) => {
    const top = Math.max(...losses.map((l) => l[field]), 1e-12);
    const points = losses.map((l) => {
      const x = pad + ((l.step - 1) / (maxStep - 1)) * (width - pad - 5);
      const y = height - pad - (l[field] / top) * (height - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    add("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 1.5, "data-series": field });
    add("text", { x: pad + 5 + index * 200, y: 15, fill: colour, "font-size": 12 },
      `${name} (max ${top.toPrecision(3)})`);
  });
  return svg;
}

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds >= 90 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

async function jobView(jobId) {
  let job = await getJson(`/jobs/${jobId}`);
  let artifacts = [];
  let losses = (await getJson(`/jobs/${jobId}/losses`)).items;
  let eta = null;
  let alive = true;
  leaveView = () => { alive = false; stopStreams(); };

  const statusPill = h("span", { class: "status", id: "job-status" });
  const barFill = h("div", {});
  const bar = h("div", { class: "bar", role: "progressbar", "aria-label": "Training progress", "aria-valuemin": 0,
    "aria-valuemax": 100, id: "progress" }, barFill);
  const progressText = h("p", { id: "progress-text" });
  const cancel = h("button", { type: "button", class: "danger", text: "Cancel job" });
  const opacity = h("input", { id: "mask-opacity", type: "range", min: 0, max: 1, step: 0.05, value: 0.6 });
  const photoBox = h("div", { class: "photo-box", id: "photo-box" });
  const legend = h("ul", { class: "legend", "aria-label": "Mask colours" });
  const heatmaps = h("div", { class: "heatmaps", id: "heatmaps" });
  const ratios = h("div", { id: "ratios" });
  const chart = h("div", { id: "loss-chart" });
  const timings = h("div", { id: "timings" });
  const downloads = h("div", { class: "row", id: "downloads" });
  const error = h("p", { class: "field-error", id: "job-error", role: "alert" });
  const generate = h("section", { class: "card", id: "generate", "aria-labelledby": "generate-title" });

  opacity.addEventListener("input", () => photoBox.style.setProperty("--mask-opacity", opacity.value));
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      job = await (await api(`/jobs/${jobId}/cancel`, { method: "POST" })).json();
      render();
    } catch (problem) {
      error.textContent = problem.message;
    }
  });

  const renderProgress = () => {
    const percent = Math.round((100 * job.progress.step) / Math.max(job.progress.total, 1));
    barFill.style.width = `${percent}%`;
    bar.setAttribute("aria-valuenow", percent);
    bar.setAttribute("aria-valuetext", `${percent} %`);
    statusPill.textContent = job.cancel_requested && !TERMINAL.has(job.status) ? `${job.status} (canceling)` : job.status;
    statusPill.className = `status ${job.status}`;
    const etaText = eta !== null && !TERMINAL.has(job.status) ? ` · about ${formatSeconds(eta)} left` : "";
    progressText.textContent = `${job.progress.step} / ${job.progress.total} steps (${percent} %)${etaText}`;
    cancel.hidden = TERMINAL.has(job.status);
    error.textContent = job.error ? `${job.error.message} (${job.error.code})` : "";
  };

  const renderMasks = () => {
    const fit = job.options.fit === "pad" ? "contain" : "cover";
    const photo = h("img", { class: "photo", src: job.image_url, alt: "The job's photo", style: `object-fit: ${fit}` });
    const overlays = job.concepts.filter((c) => c.mask_url).map((concept, index) =>
      h("div", { class: "overlay" },
        h("img", { class: "mask", src: concept.mask_url, alt: `Mask of ${concept.name}`, "data-concept": concept.name }),
        h("div", { class: "tint", style: `background: ${COLOURS[index % COLOURS.length]}` })));
    photoBox.replaceChildren(photo, ...overlays);
    legend.replaceChildren(...job.concepts.map((concept, index) => h("li", {},
      h("span", { class: "swatch", style: `background: ${COLOURS[index % COLOURS.length]}` }),
      `${concept.name}${concept.mask_url ? "" : " (mask not yet known)"}`)));
  };

  const renderHeatmaps = () => {
    const byName = Object.fromEntries(artifacts.map((a) => [a.name, a.url]));
    heatmaps.replaceChildren(...job.concepts.flatMap((concept, index) => ["before", "after"]
      .filter((moment) => byName[`heatmap_${index}_${moment}`])
      .map((moment) => h("figure", {},
        h("img", { src: byName[`heatmap_${index}_${moment}`], alt: `Attention of ${concept.name} ${moment} the random walk` }),
        h("figcaption", { text: `${concept.name}: ${moment} the random walk` })))));
    if (!heatmaps.children.length) heatmaps.append(h("p", { class: "hint", text: "Heatmaps appear when masking has run (not for uploaded masks)." }));
  };

  const renderRatios = () => {
    ratios.replaceChildren(...job.concepts.map((concept) => {
      const percent = concept.ratio === null ? 0 : Math.round(concept.ratio * 1000) / 10;
      return h("div", { class: "ratio" }, h("span", { text: concept.name }),
        h("div", { class: "bar", role: "img", "aria-label": `${concept.name}: ${concept.ratio === null ? "not yet estimated" : `${percent} %`}` },
          h("div", { style: `width: ${percent}%` })),
        h("span", { text: concept.ratio === null ? "–" : `${percent} %` }));
    }));
  };

  const renderTimings = () => {
    const rows = Object.entries(job.stage_timings).map(([stage, timing]) =>
      h("tr", {}, h("th", { scope: "row", text: stage }),
        h("td", { text: timing.seconds === null ? "running" : `${timing.seconds.toFixed(1)} s` })));
    timings.replaceChildren(rows.length ? h("table", {}, h("tbody", {}, rows)) : h("p", { class: "hint", text: "Not started yet." }));
  };

  const download = async (path, name, button) => {
    button.disabled = true;
    try {
      const blob = await (await api(path)).blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: name });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      button.disabled = false;
    }
  };

  const renderDownloads = () => {
    if (job.status !== "succeeded") {
      downloads.replaceChildren(h("p", { class: "hint", text: "Downloads appear when the job has succeeded." }));
      return;
    }
    const zip = h("button", { type: "button", id: "download-zip", text: "Download the concept set (zip)" });
    const diffusers = h("button", { type: "button", class: "secondary", id: "download-diffusers", text: "Download the diffusers export (zip)" });
    zip.addEventListener("click", () => download(`/jobs/${jobId}/archive`, `attencraft-${jobId}.zip`, zip));
    diffusers.addEventListener("click", () => download(`/jobs/${jobId}/archive?format=diffusers`, `attencraft-${jobId}-diffusers.zip`, diffusers));
    downloads.replaceChildren(zip, diffusers);
  };

  const render = () => {
    renderProgress();
    renderMasks();
    renderHeatmaps();
    renderRatios();
    chart.replaceChildren(lossChart(losses));
    renderTimings();
    renderDownloads();
    if (job.status === "succeeded" && !generate.children.length) generateSection(job, generate);
  };

  const refresh = async () => {
    [job, artifacts] = await Promise.all([getJson(`/jobs/${jobId}`), getJson(`/jobs/${jobId}/artifacts`).then((a) => a.items)]);
    if (alive) render();
  };

  const section = (id, title, ...children) =>
    h("section", { class: "card", "aria-labelledby": id }, h("h2", { id, text: title }), ...children);
  view().replaceChildren(
    h("section", { class: "card" },
      h("h1", {}, `Job: ${job.concepts.map((c) => c.name).join(" + ")} `, statusPill),
      bar, progressText, error, cancel),
    h("div", { class: "grid" },
      section("masks-title", "Masks", photoBox, legend,
        h("label", { for: "mask-opacity", text: "Mask opacity" }), opacity),
      section("heatmaps-title", "Attention heatmaps", heatmaps),
      section("ratios-title", "Sampling ratios", ratios),
      section("timings-title", "Stage timings", timings)),
    section("losses-title", "Loss curves", chart),
    section("downloads-title", "Downloads", downloads),
    generate);
  artifacts = (await getJson(`/jobs/${jobId}/artifacts`)).items;
  render();

  if (TERMINAL.has(job.status)) return;
  await follow(`/jobs/${jobId}/events`, (name, data) => {
    if (!alive) return;
    if (data.status) job.status = data.status;
    if (name === "progress") {
      job.progress = { step: data.step, total: data.total };
      eta = data.eta_seconds;
      const known = new Set(losses.map((l) => l.step));
      losses = losses.concat(data.losses.filter((l) => !known.has(l.step)));
      chart.replaceChildren(lossChart(losses));
    }
    renderProgress();
    if (name !== "progress") refresh();
  });
}

// ---------------------------------------------------------------- generate and the gallery

async function generateSection(job, section) {
  const prompt = h("textarea", { id: "prompt", "data-field": "prompt", "aria-describedby": "prompt-hint error-prompt" });
  prompt.value = job.concepts.map((c) => c.placeholder).join(" and ") + " on the beach";
  const insert = (placeholder) => {
    const start = prompt.selectionStart ?? prompt.value.length;
    const end = prompt.selectionEnd ?? start;
    prompt.value = `${prompt.value.slice(0, start)}${placeholder}${prompt.value.slice(end)}`;
    prompt.focus();
    prompt.setSelectionRange(start + placeholder.length, start + placeholder.length);
  };
  const number = (id, label, value, attributes) => h("div", {},
    h("label", { for: id, text: label }),
    h("input", { id, type: "number", value, "data-field": id, "aria-describedby": `error-${id}`, ...attributes }),
    h("p", { class: "field-error", id: `error-${id}`, role: "alert" }));
  const gallery = h("div", { class: "gallery", id: "gallery", "aria-label": "Gallery" });
  const pending = h("p", { class: "hint", id: "generate-status", role: "status" });
  const form = h("form", { novalidate: true },
    h("label", { for: "prompt", text: "Prompt" }),
    h("p", { class: "hint", id: "prompt-hint", text: "Write the concepts as their placeholders; click one to insert it." }),
    h("div", { class: "chips", role: "group", "aria-label": "Placeholders" },
      job.concepts.map((c) => h("button", { type: "button", class: "chip-button", text: c.placeholder,
        "aria-label": `Insert ${c.placeholder}`, onclick: () => insert(c.placeholder) }))),
    prompt, h("p", { class: "field-error", id: "error-prompt", role: "alert" }),
    h("div", { class: "row" },
      number("seed", "Seed (empty: random)", "", { min: 0 }),
      number("steps", "Sampling steps", 50, { min: 1, max: 150 }),
      number("guidance_scale", "Guidance scale", 7.5, { min: 0, step: 0.5 }),
      number("num_images", "Images", 1, { min: 1, max: 8 })),
    h("p", { class: "field-error", id: "error-general", role: "alert" }),
    h("button", { type: "submit", id: "submit-generation", text: "Generate" }), pending);

  const figure = (generation) => h("figure", { "data-generation": generation.id },
    generation.images.map((image, index) => h("img", { src: image.url, alt: `${generation.prompt}, seed ${generation.seed + index}` })),
    h("figcaption", {}, h("span", { text: `${generation.prompt} · seed ${generation.seed}` }),
      generation.error ? h("span", { class: "field-error", text: ` ${generation.error.message}` }) : null,
      " ",
      h("button", { type: "button", class: "link", text: "Reuse", "aria-label": `Reuse prompt and seed of: ${generation.prompt}, seed ${generation.seed}`,
        onclick: () => {
          prompt.value = generation.prompt;
          $("#seed", form).value = generation.seed;
          $("#steps", form).value = generation.options.steps;
          $("#guidance_scale", form).value = generation.options.guidance_scale;
          $("#num_images", form).value = generation.options.num_images;
          prompt.focus();
        } })));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { concept_ids: job.concepts.map((c) => c.id), prompt: prompt.value };
    for (const id of ["seed", "steps", "guidance_scale", "num_images"]) {
      const value = $(`#${id}`, form).value;
      if (value !== "") body[id] = Number(value);
    }
    try {
      const generation = await (await api("/generate", { method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" } })).json();
      pending.textContent = "Drawing…";
      await follow(`/generations/${generation.id}/events`, (name, data) => {
        if (name === "status" && data.status === "running") pending.textContent = "Drawing (started)…";
      });
      gallery.prepend(figure(await getJson(`/generations/${generation.id}`)));
      pending.textContent = "Done.";
    } catch (error) {
      pending.textContent = "";
      showProblem(form, error, (field) => {
        const head = field.split(".")[0];
        return ["prompt", "seed", "steps", "guidance_scale", "num_images"].includes(head) ? head : null;
      });
    }
  });

  section.replaceChildren(h("h2", { id: "generate-title", text: "Generate" }), form,
    h("h2", { text: "Gallery" }), gallery);
  const earlier = await getJson(`/jobs/${job.id}/generations`);
  gallery.append(...earlier.items.filter((g) => g.status === "succeeded" || g.error).map(figure));
}

// ---------------------------------------------------------------- routing

async function route() {
  leaveView();
  leaveView = stopStreams;
  if (!key()) return askForKey();
  const [, page, id] = location.hash.replace(/^#\/?/, "/").split("/");
  try {
    if (page === "new") await newJobView();
    else if (page === "jobs" && id) await jobView(id);
    else await jobsView();
  } catch (error) {
    if (error instanceof Problem && error.status !== 401) {
      view().replaceChildren(h("section", { class: "card" }, h("h1", { text: "Something went wrong" }),
        h("p", { class: "field-error", role: "alert", text: error.message })));
    } else if (!(error instanceof Problem)) {
      throw error;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#key-form").addEventListener("submit", useKey);
  $("#forget-key").addEventListener("click", () => askForKey());
  $("#forget-key").hidden = !key();
  window.addEventListener("hashchange", route);
  route();
});
