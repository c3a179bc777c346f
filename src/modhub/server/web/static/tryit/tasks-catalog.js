// "Try it" renderers for the catalog's image tasks: object detection (boxes), pose (keypoints and
// skeleton), segmentation (mask overlay) and style transfer (content + style -> stylised image).
// The audio tasks live in tasks-audio.js (core.js imports every tasks-*.js).
//
// Each renderer reads the module's own manifest (signatures, kinds, layouts, box_format,
// keypoint names, resize policy) and draws what modhub.predict.draw draws in Python, with the
// same colours and thresholds. What was found is also written as JSON into a hidden
// <pre class="tryit-data"> (tests and curious visitors read it there).

import { TryItError, registerTask, samplePhoto } from "./core.js";

// Sample photos the hub serves (scikit-image's data, when installed: server/web/vendor.py).
const sample = (name, label) => ({ label, url: samplePhoto(name) });
const ASTRONAUT = sample("astronaut", "An astronaut");
const COFFEE = sample("coffee", "A cup of coffee");
const CHELSEA = sample("chelsea", "Chelsea the cat");
const TISSUE = sample("immunohistochemistry", "Stained tissue");
const available = (...samples) => samples.filter((s) => s.url);

// modhub.predict.draw: palette per class, side colours of the skeleton, mask tint and opacity.
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
];
const LEFT = [0, 130, 200];
const RIGHT = [245, 130, 48];
const CENTRE = [255, 225, 25];
const MASK_COLOUR = [255, 0, 160];
const MASK_OPACITY = 0.55;
const MIN_BOX_SCORE = 0.3;
const MAX_BOXES = 20;
const MIN_KEYPOINT_SCORE = 0.2;
// A content photo larger than this (longer side, pixels) is scaled down before style transfer:
// the graph runs at the content's own size, and a phone photo would take minutes in WASM.
export const MAX_CONTENT_SIDE = 1024;

// COCO_SKELETON of modhub.predict.draw (MoveNet's drawing edges), by keypoint name.
const COCO_SKELETON = [
  ["nose", "left_eye"], ["nose", "right_eye"], ["left_eye", "left_ear"], ["right_eye", "right_ear"],
  ["nose", "left_shoulder"], ["nose", "right_shoulder"], ["left_shoulder", "right_shoulder"],
  ["left_shoulder", "left_elbow"], ["left_elbow", "left_wrist"], ["right_shoulder", "right_elbow"],
  ["right_elbow", "right_wrist"], ["left_shoulder", "left_hip"], ["right_shoulder", "right_hip"],
  ["left_hip", "right_hip"], ["left_hip", "left_knee"], ["left_knee", "left_ankle"],
  ["right_hip", "right_knee"], ["right_knee", "right_ankle"],
];

// ------------------------------------------------------------------------- shared helpers

const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

function defaultSignature(ctx) {
  return ctx.manifest.signatures.default;
}

/** The default signature's one image input (the first of kind "image"). */
function imageInput(ctx) {
  const spec = defaultSignature(ctx).inputs.find((s) => s.kind === "image");
  if (!spec) throw new TryItError("this module's default signature takes no image");
  return spec;
}

/** The module's resize policy (as modhub.predict.draw.draw_result reads it: "crop" when unset). */
function resizePolicy(ctx) {
  return ctx.manifest.preprocessing?.image?.resize || "crop";
}

/** [height, width] of an image input with fixed sizes, or null for a dynamic one. */
function modelSize(spec) {
  const layout = spec.layout || (spec.shape.length === 4 ? "NHWC" : "HWC");
  const h = spec.shape[layout.indexOf("H")];
  const w = spec.shape[layout.indexOf("W")];
  return Number.isInteger(h) && Number.isInteger(w) ? [h, w] : null;
}

/**
 * Pixel [y, x] on the photo of a point given as fractions of the model's input frame:
 * modhub.predict.draw.from_model_frame ("squash" stretches; "crop" cut the centre that covers
 * the frame; "pad" fitted the photo inside the frame, centred).
 */
export function fromModelFrame(fy, fx, photoW, photoH, size, resize) {
  if (!size || resize === "squash") return [fy * photoH, fx * photoW];
  const [mh, mw] = size;
  const scale = resize === "pad" ? Math.min(mh / photoH, mw / photoW) : Math.max(mh / photoH, mw / photoW);
  const top = (mh - photoH * scale) / 2;
  const left = (mw - photoW * scale) / 2;
  return [(fy * mh - top) / scale, (fx * mw - left) / scale];
}

function lineWidth(w, h) {
  return Math.max(2, Math.round(Math.max(w, h) / 200));
}

function asNumbers(data) {
  // int64 outputs come back as BigInt64Array.
  return data instanceof BigInt64Array || data instanceof BigUint64Array ? Array.from(data, Number) : data;
}

function element(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  el.append(...children);
  return el;
}

/** The result as JSON in a hidden <pre class="tryit-data">, for tests and the curious. */
export function writeData(ctx, task, data) {
  const pre = element("pre", { className: "tryit-data", hidden: true, textContent: JSON.stringify(data) });
  pre.dataset.task = task;
  ctx.out.append(pre);
}

/** A canvas shown scaled to the panel's width (its pixels stay the photo's). */
function show(ctx, canvas, caption) {
  canvas.className = "tryit-canvas";
  canvas.style.maxWidth = "100%";
  canvas.style.height = "auto";
  const figure = element("figure", { className: "tryit-figure" }, [canvas]);
  if (caption) figure.append(element("figcaption", { textContent: caption }));
  ctx.out.append(figure);
  return figure;
}

async function runImage(ctx, image) {
  const spec = imageInput(ctx);
  const tensor = await ctx.imageTensor(image, spec);
  return { spec, outputs: await ctx.session.run({ [spec.name]: tensor }) };
}

function outputSpec(ctx, test) {
  return defaultSignature(ctx).outputs.find(test);
}

// ---------------------------------------------------------------------------- detection

/** Boxes over MIN_BOX_SCORE, best first, in photo pixels: [{label, score, cls, box: [top, left, bottom, right]}]. */
function detections(ctx, spec, outputs, photoW, photoH) {
  const boxesSpec = outputSpec(ctx, (s) => s.kind === "boxes" || s.box_format);
  const scoresSpec = outputSpec(ctx, (s) => s.kind === "scores") || outputSpec(ctx, (s) => s.name === "detection_scores");
  const classesSpec =
    outputSpec(ctx, (s) => s.kind === "classes") || outputSpec(ctx, (s) => s.name === "detection_classes");
  if (!boxesSpec || !scoresSpec || !classesSpec) {
    throw new TryItError("this module's outputs are not boxes, scores and classes (TF Hub's detection outputs)");
  }
  const boxes = outputs[boxesSpec.name].data;
  const scores = outputs[scoresSpec.name].data;
  const classes = asNumbers(outputs[classesSpec.name].data);
  const format = boxesSpec.box_format || "yxyx";
  const normalized = boxesSpec.normalized ?? true;
  const size = modelSize(spec);
  const resize = resizePolicy(ctx);
  const order = Array.from(scores.keys())
    .filter((i) => scores[i] >= MIN_BOX_SCORE)
    .sort((a, b) => scores[b] - scores[a] || a - b)
    .slice(0, MAX_BOXES);
  return order.map((i) => {
    let [y0, x0, y1, x1] = asYxyx(Array.from(boxes.subarray(4 * i, 4 * i + 4)), format);
    if (!normalized) {
      const [fh, fw] = size || [photoH, photoW];
      [y0, x0, y1, x1] = [y0 / fh, x0 / fw, y1 / fh, x1 / fw];
    }
    const [top, left] = fromModelFrame(y0, x0, photoW, photoH, size, resize);
    const [bottom, right] = fromModelFrame(y1, x1, photoW, photoH, size, resize);
    const cls = Math.trunc(classes[i]);
    const label = ctx.labels && cls >= 0 && cls < ctx.labels.length ? ctx.labels[cls] : `class ${cls}`;
    return { label, score: scores[i], cls, box: [top, left, bottom, right] };
  });
}

function asYxyx([a, b, c, d], format) {
  switch (format) {
    case "yxyx": return [a, b, c, d];
    case "xyxy": return [b, a, d, c];
    case "xywh": return [b, a, b + d, a + c];
    case "cxcywh": return [b - d / 2, a - c / 2, b + d / 2, a + c / 2];
    default: throw new TryItError(`unknown box format ${format}`);
  }
}

function drawBoxes(canvas, found) {
  const g = canvas.getContext("2d");
  const width = lineWidth(canvas.width, canvas.height);
  const font = Math.max(12, Math.round(Math.max(canvas.width, canvas.height) / 40));
  g.font = `${font}px sans-serif`;
  g.textBaseline = "top";
  g.lineWidth = width;
  for (const { label, score, cls, box } of found) {
    const [top, left, bottom, right] = box;
    const colour = rgb(PALETTE[((cls % PALETTE.length) + PALETTE.length) % PALETTE.length]);
    g.strokeStyle = colour;
    g.strokeRect(left, top, right - left, bottom - top);
    const caption = `${label} ${score.toFixed(2)}`;
    const lift = font + 2 * width;
    const yText = top - lift >= 0 ? top - lift : top;
    g.fillStyle = colour;
    g.fillRect(left, yText, g.measureText(caption).width + 2 * width, lift);
    g.fillStyle = "#000";
    g.fillText(caption, left + width, yText + width);
  }
}

registerTask(["image-object-detection"], {
  input: "image",
  samples: available(ASTRONAUT, COFFEE),
  async run(ctx, input) {
    const { spec, outputs } = await runImage(ctx, input.image);
    const canvas = ctx.canvasOf(input.image);
    const found = detections(ctx, spec, outputs, canvas.width, canvas.height);
    drawBoxes(canvas, found);
    show(ctx, canvas, found.length ? "" : `nothing found with a score of ${MIN_BOX_SCORE} or more`);
    const list = element("ol", { className: "tryit-list" });
    for (const d of found) list.append(element("li", { textContent: `${d.label} ${d.score.toFixed(2)}` }));
    if (found.length) ctx.out.append(list);
    writeData(ctx, "image-object-detection", {
      min_score: MIN_BOX_SCORE,
      detections: found.map((d) => ({ ...d, score: +d.score.toFixed(4), box: d.box.map((v) => +v.toFixed(1)) })),
    });
  },
});

// --------------------------------------------------------------------------------- pose

function sideColour(a, b) {
  if (a.startsWith("left") && b.startsWith("left")) return LEFT;
  if (a.startsWith("right") && b.startsWith("right")) return RIGHT;
  return CENTRE;
}

function drawKeypoints(canvas, points) {
  const g = canvas.getContext("2d");
  const width = lineWidth(canvas.width, canvas.height);
  const index = new Map(points.map((p, i) => [p.name, i]));
  g.lineWidth = width;
  g.lineCap = "round";
  for (const [a, b] of COCO_SKELETON) {
    const p = points[index.get(a)];
    const q = points[index.get(b)];
    if (!p || !q || p.score < MIN_KEYPOINT_SCORE || q.score < MIN_KEYPOINT_SCORE) continue;
    g.strokeStyle = rgb(sideColour(a, b));
    g.beginPath();
    g.moveTo(p.x, p.y);
    g.lineTo(q.x, q.y);
    g.stroke();
  }
  const radius = width * 1.6;
  g.lineWidth = 1;
  g.strokeStyle = "#000";
  for (const p of points) {
    if (p.score < MIN_KEYPOINT_SCORE) continue;
    g.fillStyle = rgb(sideColour(p.name, p.name));
    g.beginPath();
    g.arc(p.x, p.y, radius, 0, 2 * Math.PI);
    g.fill();
    g.stroke();
  }
}

registerTask(["image-pose-detection"], {
  input: "image",
  samples: available(ASTRONAUT),
  async run(ctx, input) {
    const { spec, outputs } = await runImage(ctx, input.image);
    const pointsSpec = outputSpec(ctx, (s) => s.kind === "keypoints");
    if (!pointsSpec) throw new TryItError("this module has no output of kind keypoints");
    const values = outputs[pointsSpec.name].data;
    const names = pointsSpec.keypoints || [];
    const canvas = ctx.canvasOf(input.image);
    const size = modelSize(spec);
    const resize = resizePolicy(ctx);
    const points = [];
    // [..., K, 3]: y, x (fractions of the model's frame), score. One person: the first K rows.
    const count = names.length || Math.floor(values.length / 3);
    for (let k = 0; k < count; k++) {
      const [y, x] = fromModelFrame(values[3 * k], values[3 * k + 1], canvas.width, canvas.height, size, resize);
      points.push({ name: names[k] || `point ${k}`, x, y, score: values[3 * k + 2] });
    }
    drawKeypoints(canvas, points);
    const shown = points.filter((p) => p.score >= MIN_KEYPOINT_SCORE).length;
    show(ctx, canvas, `${shown} of ${points.length} keypoints with a confidence of ${MIN_KEYPOINT_SCORE} or more`);
    writeData(ctx, "image-pose-detection", {
      min_score: MIN_KEYPOINT_SCORE,
      keypoints: points.map((p) => ({ name: p.name, x: +p.x.toFixed(1), y: +p.y.toFixed(1), score: +p.score.toFixed(4) })),
    });
  },
});

// ------------------------------------------------------------------------- segmentation

/** The mask output squeezed to [H, W] (probabilities): {height, width, values}. */
function maskOf(tensor) {
  const dims = tensor.dims.filter((d) => d !== 1);
  if (dims.length !== 2) {
    throw new TryItError(
      `the mask is shaped [${tensor.dims.join(", ")}]; this panel draws one-channel masks [H, W] ` +
        "(use modhub.predict.draw in Python for class maps)",
    );
  }
  return { height: dims[0], width: dims[1], values: tensor.data };
}

/** Run-length code of mask > 0.5, row-major, starting with a run of zeros. */
function runLengths(values, threshold = 0.5) {
  const runs = [];
  let current = false;
  let length = 0;
  for (const v of values) {
    const on = v > threshold;
    if (on === current) length++;
    else {
      runs.push(length);
      current = on;
      length = 1;
    }
  }
  runs.push(length);
  return runs;
}

/** The tint layer (colour, alpha = mask x opacity) in the model's frame, as a canvas. */
function tintLayer(mask) {
  const layer = document.createElement("canvas");
  layer.width = mask.width;
  layer.height = mask.height;
  const g = layer.getContext("2d");
  const image = g.createImageData(mask.width, mask.height);
  const px = image.data;
  for (let i = 0; i < mask.values.length; i++) {
    const v = Math.min(1, Math.max(0, mask.values[i]));
    px[4 * i] = MASK_COLOUR[0];
    px[4 * i + 1] = MASK_COLOUR[1];
    px[4 * i + 2] = MASK_COLOUR[2];
    px[4 * i + 3] = Math.round(v * 255 * MASK_OPACITY);
  }
  g.putImageData(image, 0, 0);
  return layer;
}

/** Where the model's frame lies on the photo (modhub.predict.draw.mask_on_photo): [x, y, w, h]. */
function frameOnPhoto(photoW, photoH, size, resize) {
  if (resize === "squash" || !size) return [0, 0, photoW, photoH];
  const [mh, mw] = size;
  const scale = resize === "crop" ? Math.max(mh / photoH, mw / photoW) : Math.min(mh / photoH, mw / photoW);
  const top = (mh - photoH * scale) / 2;
  const left = (mw - photoW * scale) / 2;
  const y0 = Math.round(-top / scale);
  const x0 = Math.round(-left / scale);
  const y1 = Math.round((mh - top) / scale);
  const x1 = Math.round((mw - left) / scale);
  return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
}

registerTask(["image-segmentation"], {
  input: "image",
  samples: available(ASTRONAUT, COFFEE),
  async run(ctx, input) {
    const { spec, outputs } = await runImage(ctx, input.image);
    const maskSpec = outputSpec(ctx, (s) => s.kind === "mask");
    if (!maskSpec) throw new TryItError("this module has no output of kind mask");
    const mask = maskOf(outputs[maskSpec.name]);
    const canvas = ctx.canvasOf(input.image);
    const g = canvas.getContext("2d");
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = "high";
    const size = modelSize(spec) || [mask.height, mask.width];
    g.drawImage(tintLayer(mask), ...frameOnPhoto(canvas.width, canvas.height, size, resizePolicy(ctx)));
    let on = 0;
    for (const v of mask.values) if (v > 0.5) on++;
    const share = on / mask.values.length;
    show(ctx, canvas, `mask over ${(100 * share).toFixed(1)}% of the picture (probability over 0.5)`);
    writeData(ctx, "image-segmentation", {
      height: mask.height,
      width: mask.width,
      coverage: +share.toFixed(4),
      rle: runLengths(mask.values),
    });
  },
});

// ------------------------------------------------------------------------ style transfer

/** The pixels of ``canvas`` as a tensor for ``spec`` (own size): layout, dtype, value range, BGR. */
function pixelsTensor(ort, canvas, spec) {
  const { width, height } = canvas;
  const px = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const layout = spec.layout || (spec.shape.length === 4 ? "NHWC" : "HWC");
  const isFloat = spec.dtype.startsWith("float");
  const [low, high] = spec.value_range || (isFloat ? [0, 1] : [0, 255]);
  const n = width * height;
  const Array_ = { uint8: Uint8Array, int32: Int32Array }[spec.dtype] || Float32Array;
  const values = new Array_(3 * n);
  const first = layout.includes("CHW");
  const scale = (high - low) / 255;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      const v = px[4 * i + (spec.color === "BGR" ? 2 - k : k)] * scale + low;
      values[first ? k * n + i : 3 * i + k] = isFloat ? v : Math.round(v);
    }
  }
  const hwc = first ? [3, height, width] : [height, width, 3];
  return new ort.Tensor(spec.dtype, values, layout.length === 4 ? [1, ...hwc] : hwc);
}

/** The photo at its size, or scaled down to MAX_CONTENT_SIDE on its longer side. */
function contentCanvas(ctx, image) {
  const canvas = ctx.canvasOf(image);
  const side = Math.max(canvas.width, canvas.height);
  if (side <= MAX_CONTENT_SIDE) return { canvas, scaled: false };
  const s = MAX_CONTENT_SIDE / side;
  const small = document.createElement("canvas");
  small.width = Math.max(1, Math.round(canvas.width * s));
  small.height = Math.max(1, Math.round(canvas.height * s));
  const g = small.getContext("2d");
  g.imageSmoothingQuality = "high";
  g.drawImage(canvas, 0, 0, small.width, small.height);
  return { canvas: small, scaled: true };
}

/** An image output ([1,] H, W, 3 or channels first) in its value range as a canvas. */
function imageCanvas(tensor, spec) {
  const first = spec.layout === "NCHW" || spec.layout === "CHW";
  const dims = tensor.dims.slice(-3);
  const [height, width] = first ? dims.slice(1) : dims.slice(0, 2);
  const [low, high] = spec.value_range || [0, 1];
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  const image = g.createImageData(width, height);
  const n = width * height;
  const data = tensor.data;
  const isFloat = spec.dtype.startsWith("float");
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      const v = data[first ? k * n + i : 3 * i + k];
      const scaled = isFloat ? Math.round(Math.min(1, Math.max(0, (v - low) / (high - low || 1))) * 255) : v;
      image.data[4 * i + (spec.color === "BGR" ? 2 - k : k)] = scaled;
    }
    image.data[4 * i + 3] = 255;
  }
  g.putImageData(image, 0, 0);
  return canvas;
}

registerTask(["image-style-transfer"], {
  input: "image-pair",
  // core.js shows one picker per side and runs when both are chosen.
  pairLabels: ["Content", "Style"],
  pairSamples: [available(ASTRONAUT, CHELSEA, COFFEE), available(TISSUE, COFFEE)],
  samples: available(ASTRONAUT, TISSUE),
  async run(ctx, input) {
    const sig = defaultSignature(ctx);
    const [contentSpec, styleSpec] = sig.inputs;
    const [content, style] = input.images;
    const feeds = {};
    let note = "";
    if (modelSize(contentSpec)) {
      feeds[contentSpec.name] = await ctx.imageTensor(content, contentSpec);
    } else {
      // The content is taken at its own size (as modhub's Python call does), within MAX_CONTENT_SIDE.
      const { canvas, scaled } = contentCanvas(ctx, content);
      feeds[contentSpec.name] = pixelsTensor(ctx.ort, canvas, contentSpec);
      if (scaled) note = ` (content scaled down to ${canvas.width} x ${canvas.height} for the browser)`;
    }
    feeds[styleSpec.name] = await ctx.imageTensor(style, styleSpec);
    const outputs = await ctx.session.run(feeds);
    const outSpec = sig.outputs[0];
    const styled = imageCanvas(outputs[outSpec.name], outSpec);
    const row = element("div", { className: "tryit-row" });
    row.style.display = "flex";
    row.style.flexWrap = "wrap";
    row.style.gap = "8px";
    ctx.out.append(row);
    const into = { out: row };
    for (const [canvas, caption] of [
      [ctx.canvasOf(content), "content"],
      [ctx.canvasOf(style), "style"],
      [styled, `stylised${note}`],
    ]) {
      const figure = show(into, canvas, caption);
      figure.style.flex = "1 1 200px";
      figure.style.margin = "0";
    }
    writeData(ctx, "image-style-transfer", {
      width: styled.width,
      height: styled.height,
      content: [content.naturalWidth, content.naturalHeight],
    });
  },
});
