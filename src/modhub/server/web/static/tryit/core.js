// The "try it" panel of a module page: runs the module's model.onnx in the visitor's browser
// with onnxruntime-web (WASM). Nothing is computed on the hub: the browser downloads the
// module's files from the hub's file URLs, checks each against the manifest's sha256 with
// SubtleCrypto, and only then runs them.
//
// module.html loads this ES module only when the panel can be shown, into
//   <section id="tryit" hidden data-version-url data-runtime data-wasm data-tokenizers
//            data-tasks data-max-bytes data-samples>
// The task scripts (tasks-*.js) register a renderer per task id on import:
//   registerTask(taskIds, { input: "image" | "text" | "audio" | "image-pair",
//                           samples: [{label, url} | {label, text}],
//                           run: async (ctx, input) => {} })
// The panel stays hidden for a task no script handles. See docs/web.md.

import { MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, imageInput } from "./images.js";

const section = document.getElementById("tryit");
const renderers = new Map();

/** Register ``renderer`` for one task id or a list of them (called by tasks-*.js on import). */
export function registerTask(taskIds, renderer) {
  for (const id of [].concat(taskIds)) renderers.set(id, renderer);
}

/** An error whose message is for the visitor (shown as it is). */
export class TryItError extends Error {}

const MB = 2 ** 20;
const megabytes = (n) => (n < MB / 10 ? `${Math.max(1, Math.round(n / 1024))} KB` : `${(n / MB).toFixed(n < 10 * MB ? 1 : 0)} MB`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}
export { el };

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ the module's files

class Module {
  constructor(versionUrl, detail) {
    this.versionUrl = versionUrl;
    this.manifest = detail.manifest;
    this.entries = new Map((this.manifest.files || []).map((f) => [f.path, f]));
    this.cache = new Map();
    this.downloaded = 0;
  }

  has(path) {
    return this.entries.has(path);
  }

  size(path) {
    return this.entries.get(path)?.size || 0;
  }

  /** The bytes of a listed file, downloaded once and checked against its sha256. */
  file(path, progress) {
    if (!this.cache.has(path)) {
      const promise = this.fetchChecked(path, progress);
      promise.catch(() => this.cache.delete(path));
      this.cache.set(path, promise);
    }
    return this.cache.get(path);
  }

  async fetchChecked(path, progress) {
    const entry = this.entries.get(path);
    if (!entry) throw new TryItError(`the manifest lists no file ${path}`);
    // A file this browser checked before (any module, any version: by content) comes from the
    // page's Cache Storage; it is checked again all the same.
    const cached = await fromCache(entry.sha256);
    if (cached && (await sha256Hex(cached)) === entry.sha256) return cached;
    const url = `${this.versionUrl}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
    const response = await fetch(url);
    if (!response.ok) throw new TryItError(`could not download ${path} (HTTP ${response.status})`);
    const bytes = await readAll(response, entry.size, (n) => progress?.(path, n, entry.size));
    this.downloaded += bytes.byteLength;
    const got = await sha256Hex(bytes);
    if (got !== entry.sha256) {
      section.dataset.state = "integrity-error";
      throw new TryItError(
        `${path} does not match the manifest: its sha256 is ${got}, modhub.json lists ${entry.sha256}. ` +
          "The file was changed after publishing; the page does not run it.",
      );
    }
    toCache(entry.sha256, bytes);
    return bytes;
  }

  async text(path) {
    return new TextDecoder().decode(await this.file(path));
  }
}

// Module files by sha256, kept by the browser between visits (Cache Storage: secure contexts only).
const CACHE_NAME = "modhub-tryit-files-v1";
const cacheKey = (sha256) => new URL(`/static/tryit/by-sha256/${sha256}`, location.href).href;

async function fromCache(sha256) {
  try {
    const hit = await (await caches.open(CACHE_NAME)).match(cacheKey(sha256));
    return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
  } catch {
    return null; // no Cache Storage here (or it is full / disabled): download
  }
}

function toCache(sha256, bytes) {
  caches
    .open(CACHE_NAME)
    .then((cache) => cache.put(cacheKey(sha256), new Response(bytes)))
    .catch(() => {}); // out of quota: the next visit downloads again
}

async function readAll(response, expected, onProgress) {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const out = new Uint8Array(expected);
  let chunks = null;
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.byteLength > expected) {
      // More bytes than the manifest says: collect them to hash (it will not match).
      chunks = chunks || [out.slice(0, got)];
      chunks.push(value);
    } else {
      out.set(value, got);
    }
    got += value.byteLength;
    onProgress(got);
  }
  if (chunks) return new Uint8Array(await new Blob(chunks).arrayBuffer());
  return got === expected ? out : out.slice(0, got);
}

// The graph files of a signature: its model.onnx and, when listed, model.onnx.data beside it.
function graphFiles(manifest, name) {
  const sig = manifest.signatures[name];
  if (!sig) throw new TryItError(`the module has no signature ${name}`);
  const folder = sig.path ? `${sig.path}/` : "";
  return { model: `${folder}model.onnx`, data: `${folder}model.onnx.data` };
}

// Label files: the first output's own labels, else the manifest's.
function labelsPath(manifest) {
  const sig = manifest.signatures.default;
  for (const spec of [...(sig.outputs || []), ...(sig.graph_outputs || [])]) if (spec.labels) return spec.labels;
  return manifest.labels || null;
}

function downloadPlan(module, renderer) {
  const m = module.manifest;
  const { model, data } = graphFiles(m, "default");
  const paths = [model];
  if (module.has(data)) paths.push(data);
  const labels = labelsPath(m);
  if (labels) paths.push(labels);
  if (m.preprocessing?.tokenizer) paths.push(m.preprocessing.tokenizer.file);
  for (const name of renderer.signatures || []) {
    const g = graphFiles(m, name);
    paths.push(g.model);
    if (module.has(g.data)) paths.push(g.data);
  }
  return paths.filter((p) => module.has(p));
}

// ------------------------------------------------------------------ the runtime

let ortPromise = null;
function loadOrt() {
  ortPromise ??= import(section.dataset.runtime).then((ort) => {
    ort.env.wasm.wasmPaths = new URL(section.dataset.wasm, location.href).href;
    // One thread: several need cross-origin isolation (SharedArrayBuffer), which the hub's pages lack.
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    return ort;
  });
  return ortPromise;
}

/** @huggingface/tokenizers' Tokenizer class, loaded when a text task first needs it. */
export function loadTokenizers() {
  return import(section.dataset.tokenizers);
}

function canvasOf(img) {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth || img.width;
  canvas.height = img.naturalHeight || img.height;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  // Transparent photos are composited on white, as runtimes/images.py does.
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.drawImage(img, 0, 0);
  return canvas;
}

function pixelsOf(img) {
  const canvas = canvasOf(img);
  const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  return { width: image.width, height: image.height, data: image.data };
}

// The default input of the original image tasks (calls.py: check_images, divided by 255).
function isLegacyImageInput(manifest, spec) {
  const sig = manifest.signatures.default;
  const image = manifest.preprocessing?.image;
  return (
    sig.inputs.length === 1 &&
    sig.inputs[0] === spec &&
    ["image-classification", "image-feature-vector"].includes(manifest.task) &&
    !!image &&
    spec.dtype === "float32" &&
    spec.layout === "NCHW" &&
    spec.shape[1] === 3 &&
    spec.shape[2] === image.height &&
    spec.shape[3] === image.width &&
    !spec.kind
  );
}

async function makeContext(module, renderer, out, status) {
  const manifest = module.manifest;
  const ort = await loadOrt();
  const progress = (path, got, size) => {
    status(`Downloading ${path}: ${megabytes(got)} of ${megabytes(size)}…`);
  };
  const sessions = new Map();
  const sessionFor = (name) => {
    if (!sessions.has(name)) {
      sessions.set(
        name,
        (async () => {
          const { model, data } = graphFiles(manifest, name);
          const [modelBytes, dataBytes] = await Promise.all([
            module.file(model, progress),
            module.has(data) ? module.file(data, progress) : null,
          ]);
          status("Starting onnxruntime-web…");
          const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
          // The weights' file name as model.onnx refers to it (beside it, in the same folder).
          if (dataBytes) options.externalData = [{ path: "model.onnx.data", data: dataBytes }];
          return ort.InferenceSession.create(modelBytes, options);
        })(),
      );
      sessions.get(name).catch(() => sessions.delete(name));
    }
    return sessions.get(name);
  };
  const labelsFile = labelsPath(manifest);
  const labels = labelsFile ? (await module.text(labelsFile)).split(/\r?\n/).filter((l, i, a) => l || i < a.length - 1) : null;
  const session = await sessionFor("default");
  return {
    ort,
    manifest,
    session,
    sessionFor,
    out,
    labels,
    module,
    file: (path) => module.file(path, progress),
    fail(message) {
      throw new TryItError(message);
    },
    canvasOf,
    imageTensor(img, spec) {
      spec = spec || manifest.signatures.default.inputs[0];
      const t = imageInput(pixelsOf(img), spec, manifest.preprocessing?.image || null, isLegacyImageInput(manifest, spec));
      return new ort.Tensor(t.type, t.data, t.dims);
    },
    status,
  };
}

// ------------------------------------------------------------------ input widgets

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => resolve(img);
    img.onerror = () => reject(new TryItError("the file is not an image the browser can read (JPEG, PNG, WebP, GIF, BMP…)"));
    img.src = url;
  });
}

/** A visitor's file as an image, refused with a clear message when it is not one or too large. */
export async function imageFromFile(file) {
  if (file.size > MAX_PHOTO_BYTES) {
    throw new TryItError(
      `${file.name} is a ${megabytes(file.size)} file, over the limit of ${MAX_PHOTO_BYTES / MB} MB per photo; scale it down first`,
    );
  }
  if (file.type && !file.type.startsWith("image/")) {
    throw new TryItError(`${file.name} is not an image (${file.type}); choose a photo (JPEG, PNG, WebP…)`);
  }
  const url = URL.createObjectURL(file);
  let img;
  try {
    img = await loadImage(url);
  } catch (error) {
    URL.revokeObjectURL(url);
    throw new TryItError(`${file.name} is not an image the browser can read; choose a photo (JPEG, PNG, WebP…)`);
  }
  const pixels = img.naturalWidth * img.naturalHeight;
  if (pixels > MAX_PHOTO_PIXELS) {
    throw new TryItError(
      `${file.name} is ${img.naturalWidth} × ${img.naturalHeight} pixels (${Math.round(pixels / 1e6)} megapixels), ` +
        `over the limit of ${MAX_PHOTO_PIXELS / 1e6} megapixels per photo; scale it down first`,
    );
  }
  return img;
}

function sampleUrl(sample) {
  return new URL(sample.url, location.href).href;
}

// One image picker: sample thumbnails, a file input and a drop zone. onPick(img, label).
function imagePicker(samples, onPick, onError, title = "Your own photo") {
  const wrap = el("div", { class: "tryit-picker" });
  if (samples.length) {
    const list = el("div", { class: "tryit-samples", role: "group", "aria-label": "Sample photos" });
    for (const sample of samples) {
      const button = el(
        "button",
        { type: "button", class: "tryit-sample", "data-sample": sample.label },
        el("img", { src: sampleUrl(sample), alt: sample.label }),
        el("span", { text: sample.label }),
      );
      button.addEventListener("click", async () => {
        for (const other of list.querySelectorAll(".tryit-sample")) other.classList.toggle("is-chosen", other === button);
        try {
          onPick(await loadImage(sampleUrl(sample)), sample.label);
        } catch (error) {
          onError(error);
        }
      });
      list.append(button);
    }
    wrap.append(list);
  }
  const input = el("input", { type: "file", accept: "image/*", class: "tryit-file" });
  const drop = el(
    "label",
    { class: "tryit-drop" },
    el("span", { text: `${title}: drop it here or ` }),
    el("span", { class: "tryit-choose", text: "choose a file" }),
    input,
  );
  const take = async (file) => {
    if (!file) return;
    try {
      onPick(await imageFromFile(file), file.name);
    } catch (error) {
      onError(error);
    }
  };
  input.addEventListener("change", () => take(input.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("is-over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("is-over");
    take(event.dataTransfer.files[0]);
  });
  wrap.append(drop);
  return wrap;
}

function textInput(samples, onRun) {
  const area = el("textarea", {
    class: "tryit-text",
    rows: Math.max(4, samples.length + 1),
    "aria-label": "Texts, one per line",
    spellcheck: "false",
  });
  area.value = samples.map((s) => s.text).join("\n");
  const button = el("button", { type: "button", class: "button primary tryit-run", text: "Run" });
  button.addEventListener("click", () => {
    const texts = area.value.split(/\r?\n/).map((t) => t.trim()).filter(Boolean);
    onRun({ texts });
  });
  return el("div", { class: "tryit-textbox" }, el("p", { class: "hint", text: "One text per line." }), area, button);
}

async function decodeAudio(buffer, rate) {
  const Offline = window.OfflineAudioContext || window.webkitOfflineAudioContext;
  // decodeAudioData resamples to the context's rate: the module's own when it says one.
  const context = new Offline(1, 1, rate || 16000);
  let decoded;
  try {
    decoded = await context.decodeAudioData(buffer);
  } catch (error) {
    throw new TryItError("the file is not sound the browser can decode (WAV, MP3, OGG, FLAC…)");
  }
  const audio = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < audio.length; i++) audio[i] += channel[i] / decoded.numberOfChannels;
  }
  return { audio, sampleRate: decoded.sampleRate };
}

function audioInput(samples, rate, onRun, onError) {
  const wrap = el("div", { class: "tryit-picker" });
  const take = async (load, label) => {
    try {
      onRun({ ...(await decodeAudio(await load(), rate)), label });
    } catch (error) {
      onError(error);
    }
  };
  if (samples.length) {
    const list = el("div", { class: "tryit-samples", role: "group", "aria-label": "Sample sounds" });
    for (const sample of samples) {
      list.append(
        el("button", {
          type: "button",
          class: "button tryit-sample-sound",
          "data-sample": sample.label,
          text: sample.label,
          onclick: () => take(async () => (await fetch(sampleUrl(sample))).arrayBuffer(), sample.label),
        }),
      );
    }
    wrap.append(list);
  }
  const input = el("input", { type: "file", accept: "audio/*", class: "tryit-file" });
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (file) take(() => file.arrayBuffer(), file.name);
  });
  wrap.append(el("label", { class: "tryit-drop" }, el("span", { text: "Your own sound: " }), el("span", { class: "tryit-choose", text: "choose a file" }), input));
  return wrap;
}

// ------------------------------------------------------------------ the panel

function fail(box, error) {
  const forVisitor = error instanceof TryItError || error?.name === "TryItError";
  const message = forVisitor ? error.message : `Something went wrong: ${error?.message || error}`;
  if (!forVisitor) console.warn(error);
  box.replaceChildren(el("p", { class: "notice notice-warn tryit-error", role: "alert", text: message }));
}

function showRenderer(module, renderer) {
  const maxBytes = Number(section.dataset.maxBytes);
  const paths = downloadPlan(module, renderer);
  const total = paths.reduce((sum, p) => sum + module.size(p), 0);
  section.hidden = false;
  if (total > maxBytes) {
    section.dataset.state = "too-large";
    section.append(
      el("p", {
        class: "notice tryit-too-large",
        text:
          `This module is too large to try in a browser: it would download ${megabytes(total)} ` +
          `(the page tries modules up to ${megabytes(maxBytes)}). Load it in Python instead (see “Use it”).`,
      }),
    );
    return;
  }
  const statusLine = el("p", { class: "tryit-status muted", role: "status", "aria-live": "polite" });
  const errors = el("div", { class: "tryit-errors" });
  const out = el("div", { class: "tryit-out" });
  const status = (text) => {
    statusLine.textContent = text;
  };
  section.append(
    el("p", {
      class: "hint",
      text:
        `Runs in your browser with onnxruntime-web; nothing you give it leaves this page. ` +
        `The first run downloads ${megabytes(total)} (checked against the module's sha256).`,
    }),
  );
  let context = null;
  let busy = false;
  const run = async (input) => {
    if (busy) return;
    busy = true;
    section.dataset.state = "running";
    errors.replaceChildren();
    out.replaceChildren();
    const started = performance.now();
    try {
      context ??= makeContext(module, renderer, out, status);
      context.catch(() => {
        context = null;
      });
      const ctx = await context;
      status("Running…");
      await renderer.run(ctx, input);
      const ms = performance.now() - started;
      status(`Done in ${ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`}.`);
      section.dataset.state = "done";
    } catch (error) {
      status("");
      fail(errors, error);
      section.dataset.state = section.dataset.state === "integrity-error" ? "integrity-error" : "error";
    } finally {
      busy = false;
    }
  };
  const onError = (error) => {
    fail(errors, error);
    section.dataset.state = "input-error";
  };
  const samples = renderer.samples || [];
  let widget;
  if (renderer.input === "image") {
    widget = imagePicker(samples, (image, label) => run({ image, label }), onError);
  } else if (renderer.input === "text") {
    widget = textInput(samples, run);
  } else if (renderer.input === "audio") {
    const spec = module.manifest.signatures.default.inputs[0];
    widget = audioInput(samples, spec?.sample_rate, run, onError);
  } else if (renderer.input === "image-pair") {
    const chosen = [null, null];
    const names = renderer.pairLabels || ["Content", "Style"];
    widget = el("div", { class: "tryit-pair" });
    names.forEach((name, i) => {
      const own = renderer.pairSamples ? renderer.pairSamples[i] : samples;
      const pick = (image) => {
        chosen[i] = image;
        if (chosen[0] && chosen[1]) run({ images: [chosen[0], chosen[1]] });
      };
      widget.append(el("div", { class: "tryit-pair-side" }, el("h3", { text: name }), imagePicker(own, pick, onError, `Your own ${name.toLowerCase()} photo`)));
    });
  } else {
    section.hidden = true;
    return;
  }
  section.append(el("div", { class: "tryit-input" }, widget), statusLine, errors, out);
  section.dataset.state = "ready";
}

async function main() {
  if (!section) return;
  if (!window.isSecureContext || !crypto.subtle) {
    section.hidden = false;
    section.dataset.state = "insecure";
    section.append(
      el("p", {
        class: "notice",
        text:
          "Trying modules needs the page over https (or http://localhost): the browser checks every " +
          "file's sha256 with SubtleCrypto, which it offers only there.",
      }),
    );
    return;
  }
  const versionUrl = section.dataset.versionUrl;
  const response = await fetch(versionUrl, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const detail = await response.json();
  const tasks = (section.dataset.tasks || "tasks-image.js tasks-text.js tasks-catalog.js").split(/\s+/).filter(Boolean);
  await Promise.all(
    tasks.map((file) =>
      import(new URL(`./${file}`, import.meta.url).href).catch((error) => console.warn(`try it: ${file}`, error)),
    ),
  );
  const renderer = renderers.get(detail.manifest?.task);
  if (!renderer) return;
  showRenderer(new Module(versionUrl, detail), renderer);
}

/** Where the sample photos are (the hub makes them from scikit-image's data), "" when it has none. */
export function samplePhoto(name) {
  const base = section?.dataset.samples;
  return base ? `${base}${name}.jpg` : "";
}

main().catch((error) => console.warn("try it:", error));
