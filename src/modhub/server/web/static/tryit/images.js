// Photos in, as modhub's Python side does it (src/modhub/runtimes/images.py), so that the
// browser feeds a module the same tensor Python would: the resize policies (squash, crop,
// pad) with Pillow's antialiased bilinear resampling ported exactly (Resample.c: the same
// coefficients, fixed-point arithmetic and rounding), then layout, colour order, dtype and
// value range from the input's spec. Pure functions on RGBA pixel arrays: no DOM here, so
// Node.js can check them against Pillow (tests/web/test_tryit.py).

// The photo caps of runtimes/images.py: MAX_PHOTO_PIXELS and MAX_PHOTO_BYTES.
export const MAX_PHOTO_PIXELS = 80_000_000;
export const MAX_PHOTO_BYTES = 256 * 2 ** 20;
// Fill of the pad borders when the module records no normalisation mean (PAD_FALLBACK).
export const PAD_FALLBACK = [0.5, 0.5, 0.5];

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const f32 = Math.fround;

// Python's round(): halves to even.
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function triangle(x) {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

// Resample.c precompute_coeffs + normalize_coeffs_8bpc (bilinear, support 1). in0/in1 are C floats.
function coefficients(inSize, in0, in1, outSize) {
  const scale = f32(in1 - in0) / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = triangle((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v) {
  if (v >= 1 << PRECISION_BITS << 8) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

// An RGBA image: { width, height, data: Uint8ClampedArray | Uint8Array (4 bytes a pixel) }.
function blank(width, height) {
  return { width, height, data: new Uint8ClampedArray(width * height * 4) };
}

/**
 * Pillow's ``Image.resize((width, height), BILINEAR, box)`` of an RGB image (alpha ignored).
 * box: [left, top, right, bottom] in source pixels (floats), default the whole image.
 */
export function resizeBilinear(src, width, height, box = [0, 0, src.width, src.height]) {
  const [x0, y0, x1, y1] = box.map(f32);
  if (width === src.width && height === src.height && x0 === 0 && y0 === 0 && x1 === src.width && y1 === src.height) {
    return { width, height, data: src.data.slice() };
  }
  const needH = width !== src.width || x0 !== 0 || x1 !== width;
  const needV = height !== src.height || y0 !== 0 || y1 !== height;
  const horiz = coefficients(src.width, x0, x1, width);
  const vert = coefficients(src.height, y0, y1, height);
  const first = vert.bounds[0];
  const last = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];
  let image = src;
  if (needH) {
    for (let i = 0; i < height; i++) vert.bounds[i * 2] -= first;
    const tmp = blank(width, last - first);
    const { ksize, bounds, kk } = horiz;
    for (let yy = 0; yy < tmp.height; yy++) {
      const row = (yy + first) * src.width;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let x = 0; x < xmax; x++) {
          const w = kk[xx * ksize + x];
          const p = (row + x + xmin) * 4;
          s0 += src.data[p] * w;
          s1 += src.data[p + 1] * w;
          s2 += src.data[p + 2] * w;
        }
        const o = (yy * width + xx) * 4;
        tmp.data[o] = clip8(s0);
        tmp.data[o + 1] = clip8(s1);
        tmp.data[o + 2] = clip8(s2);
        tmp.data[o + 3] = 255;
      }
    }
    image = tmp;
  }
  if (needV) {
    const out = blank(image.width, height);
    const { ksize, bounds, kk } = vert;
    for (let yy = 0; yy < height; yy++) {
      const ymin = bounds[yy * 2];
      const ymax = bounds[yy * 2 + 1];
      for (let xx = 0; xx < image.width; xx++) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let y = 0; y < ymax; y++) {
          const w = kk[yy * ksize + y];
          const p = ((y + ymin) * image.width + xx) * 4;
          s0 += image.data[p] * w;
          s1 += image.data[p + 1] * w;
          s2 += image.data[p + 2] * w;
        }
        const o = (yy * image.width + xx) * 4;
        out.data[o] = clip8(s0);
        out.data[o + 1] = clip8(s1);
        out.data[o + 2] = clip8(s2);
        out.data[o + 3] = 255;
      }
    }
    image = out;
  }
  return image === src ? { width, height, data: src.data.slice() } : image;
}

/** runtimes/images.py fit_photo: ``src`` (RGB, alpha already composited) as exactly width x height. */
export function fitPhoto(src, height, width, resize, fill = PAD_FALLBACK) {
  const w = src.width;
  const h = src.height;
  if (resize === "squash") return resizeBilinear(src, width, height);
  if (resize === "crop") {
    const scale = Math.max(height / h, width / w);
    const boxW = width / scale;
    const boxH = height / scale;
    const left = Math.max(0, (w - boxW) / 2);
    const top = Math.max(0, (h - boxH) / 2);
    return resizeBilinear(src, width, height, [left, top, Math.min(w, left + boxW), Math.min(h, top + boxH)]);
  }
  if (resize === "pad") {
    const scale = Math.min(height / h, width / w);
    const iw = Math.max(1, Math.min(width, roundHalfEven(w * scale)));
    const ih = Math.max(1, Math.min(height, roundHalfEven(h * scale)));
    const inner = resizeBilinear(src, iw, ih);
    const colour = fill.map((c) => roundHalfEven(255 * c));
    const out = blank(width, height);
    for (let i = 0; i < width * height; i++) out.data.set([colour[0], colour[1], colour[2], 255], i * 4);
    const ox = Math.floor((width - iw) / 2);
    const oy = Math.floor((height - ih) / 2);
    for (let y = 0; y < ih; y++) {
      out.data.set(inner.data.subarray(y * iw * 4, (y + 1) * iw * 4), ((y + oy) * width + ox) * 4);
    }
    return out;
  }
  throw new Error(`unknown resize policy ${JSON.stringify(resize)}; use one of squash, crop, pad`);
}

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
};

/**
 * The values and dims of an image input, as runtimes/images.py prepares them: the photo fitted
 * by the module's resize policy (fixed H and W) or kept at its size (dynamic ones), in the
 * input's layout, colour order, dtype and value range.
 *
 * src: RGBA pixels at the photo's natural size, on white where it was transparent.
 * spec: the input's TensorSpec (manifest JSON); image: manifest.preprocessing.image or null.
 * legacy: the default input of the original image tasks (float32 NCHW in [0, 1], divided by 255).
 * Returns { type, data, dims } for an ort.Tensor.
 */
export function imageInput(src, spec, image, legacy = false) {
  const layout = spec.layout || (spec.shape.length === 4 ? "NHWC" : "HWC");
  const batched = layout === "NCHW" || layout === "NHWC";
  const dims = spec.shape;
  let height = dims[layout.indexOf("H")];
  let width = dims[layout.indexOf("W")];
  const channels = dims[layout.indexOf("C")];
  const fixed = typeof height === "number" && typeof width === "number";
  if (!fixed && image) [height, width] = [image.height, image.width];
  else if (!fixed) [height, width] = [src.height, src.width];
  const resize = image ? image.resize || "crop" : "crop";
  const fill = image && image.mean ? image.mean : PAD_FALLBACK;
  // Dynamic height and width and no size from the module: the photo keeps its own.
  const fitted = !fixed && !image ? src : fitPhoto(src, height, width, resize, fill);
  const type = spec.dtype === "bfloat16" ? "float32" : spec.dtype;
  const Array_ = ARRAYS[type];
  if (!Array_) throw new Error(`input ${spec.name} has dtype ${spec.dtype}, which the page cannot make`);
  const isFloat = type.startsWith("float");
  if (typeof channels === "number" && channels !== 1 && channels !== 3) {
    throw new Error(`input ${spec.name} takes ${channels} channels; photos have 3 (RGB)`);
  }
  const c = channels === 1 ? 1 : 3;
  const [low, high] = spec.value_range || (isFloat ? [0, 1] : [0, 255]);
  const plain = low === 0 && high === 255;
  const factor = f32((high - low) / 255);
  const lowF = f32(low);
  const value = (p) => {
    if (legacy) return p / 255;
    if (plain) return p;
    const v = f32(f32(p * factor) + lowF);
    return isFloat ? v : roundHalfEven(v);
  };
  const n = height * width;
  const data = new Array_(n * c);
  const chw = layout === "NCHW" || layout === "CHW";
  const bgr = spec.color === "BGR";
  for (let i = 0; i < n; i++) {
    const r = fitted.data[i * 4];
    const g = fitted.data[i * 4 + 1];
    const b = fitted.data[i * 4 + 2];
    const pixel = c === 1 ? [roundHalfEven(r * 0.299 + g * 0.587 + b * 0.114)] : bgr ? [b, g, r] : [r, g, b];
    for (let k = 0; k < c; k++) {
      const v = value(pixel[k]);
      data[chw ? k * n + i : i * c + k] = type === "int64" ? BigInt(v) : v;
    }
  }
  const shape = chw ? [c, height, width] : [height, width, c];
  return { type, data, dims: batched ? [1, ...shape] : shape };
}
