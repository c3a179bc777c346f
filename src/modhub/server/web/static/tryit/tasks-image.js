// Image classification and image feature vectors in the "try it" panel (see core.js).

import { el, registerTask, samplePhoto } from "./core.js";

const SAMPLES = [
  ["chelsea", "Chelsea the cat"],
  ["coffee", "A cup of coffee"],
  ["astronaut", "An astronaut"],
]
  .map(([name, label]) => ({ label, url: samplePhoto(name) }))
  .filter((s) => s.url);

function softmax(values) {
  const max = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

// Probabilities already (each in [0, 1], summing to 1)? Else they are logits.
function probabilities(values) {
  const sum = values.reduce((a, b) => a + b, 0);
  const inRange = values.every((v) => v >= 0 && v <= 1);
  return inRange && Math.abs(sum - 1) < 1e-3 ? values : softmax(values);
}

async function runDefault(ctx, image) {
  const spec = ctx.manifest.signatures.default.inputs[0];
  const feeds = { [ctx.session.inputNames[0]]: ctx.imageTensor(image, spec) };
  const results = await ctx.session.run(feeds);
  return results[ctx.session.outputNames[0]];
}

/** Horizontal bars: [{label, value (0..1), text}], the first one highlighted. */
export function bars(rows, caption) {
  const list = el("ol", { class: "tryit-bars", "aria-label": caption });
  for (const row of rows) {
    const bar = el("span", { class: "tryit-bar" });
    bar.style.width = `${Math.max(0.5, row.value * 100).toFixed(1)}%`;
    list.append(
      el(
        "li",
        { "data-label": row.label },
        el("span", { class: "tryit-bar-label", text: row.label }),
        el("span", { class: "tryit-bar-track" }, bar),
        el("span", { class: "tryit-bar-value", text: row.text }),
      ),
    );
  }
  return list;
}

/** A similarity matrix as a table; the closest pair (off the diagonal) highlighted. */
export function similarityTable(names, matrix, caption) {
  let best = null;
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      if (!best || matrix[i][j] > matrix[best[0]][best[1]]) best = [i, j];
    }
  }
  const head = el("tr", {}, el("th", {}), ...names.map((n, j) => el("th", { scope: "col", title: n, text: `${j + 1}` })));
  const rows = names.map((name, i) =>
    el(
      "tr",
      {},
      el("th", { scope: "row", class: "tryit-row-name" }, el("span", { text: `${i + 1}. ` }), el("span", { text: name })),
      ...matrix[i].map((v, j) => {
        const cell = el("td", { text: v.toFixed(2), class: "num" });
        const shade = Math.max(0, Math.min(1, v));
        cell.style.setProperty("--sim", shade.toFixed(3));
        if (best && ((i === best[0] && j === best[1]) || (i === best[1] && j === best[0]))) cell.classList.add("is-closest");
        return cell;
      }),
    ),
  );
  const table = el("table", { class: "table tryit-matrix" }, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...rows));
  if (best) table.dataset.closest = `${best[0]},${best[1]}`;
  const note = best
    ? el("p", { class: "tryit-closest" }, el("strong", { text: "Closest pair: " }), el("span", { text: `${names[best[0]]} and ${names[best[1]]} (${matrix[best[0]][best[1]].toFixed(3)})` }))
    : null;
  return el("div", { class: "table-scroll" }, table, note);
}

/** Cosine similarity of every pair of vectors (Float32Array each). */
export function cosineMatrix(vectors) {
  const unit = vectors.map((v) => {
    const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
    return Array.from(v, (x) => x / norm);
  });
  return unit.map((a) => unit.map((b) => a.reduce((s, x, k) => s + x * b[k], 0)));
}

function thumbnail(image, label) {
  const img = el("img", { src: image.src, alt: label, class: "tryit-thumb" });
  return el("figure", { class: "tryit-figure" }, img, el("figcaption", { class: "muted small", text: label }));
}

registerTask("image-classification", {
  input: "image",
  samples: SAMPLES,
  async run(ctx, { image, label }) {
    const output = await runDefault(ctx, image);
    const scores = Array.from(output.data);
    const probs = probabilities(scores);
    const top = probs
      .map((p, i) => ({ p, i }))
      .sort((a, b) => b.p - a.p)
      .slice(0, 5)
      .map(({ p, i }) => ({
        label: ctx.labels?.[i] ?? `class ${i}`,
        value: p,
        text: `${(p * 100).toFixed(1)}%`,
      }));
    ctx.out.append(
      el("div", { class: "tryit-result" }, thumbnail(image, label || "your photo"), el("div", { class: "tryit-result-body" }, el("h3", { text: "Top 5 classes" }), bars(top, "Top 5 classes"))),
    );
  },
});

// Feature vectors: the picked photo's vector compared with the sample photos' (cosine).
const vectors = new WeakMap();
registerTask("image-feature-vector", {
  input: "image",
  samples: SAMPLES,
  async run(ctx, { image, label }) {
    const loadSample = (s) =>
      new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = reject;
        img.src = s.url;
      });
    const others = SAMPLES.filter((s) => s.label !== label);
    const images = [image, ...(await Promise.all(others.map(loadSample)))];
    const names = [label || "your photo", ...others.map((s) => s.label)];
    const outputs = [];
    for (const img of images) {
      if (!vectors.has(img)) vectors.set(img, Float32Array.from((await runDefault(ctx, img)).data));
      outputs.push(vectors.get(img));
    }
    const dims = outputs[0].length;
    ctx.out.append(
      el("div", { class: "tryit-result" }, thumbnail(image, names[0]), el("div", { class: "tryit-result-body" }, el("h3", { text: `Feature vector: ${dims} numbers` }), el("p", { class: "hint", text: "Cosine similarity of the photos' feature vectors (1: the same direction):" }), similarityTable(names, cosineMatrix(outputs), "Cosine similarity"))),
    );
  },
});
