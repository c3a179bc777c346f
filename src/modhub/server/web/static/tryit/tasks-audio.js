// "Try it" renderers for the catalog's audio tasks: voice activity / sound events (scores over
// time), pitch (a pitch curve) and audio embeddings (how similar clips are).
//
// core.js hands over {audio: Float32Array (mono), sampleRate}, decoded by the browser at the
// module's sample_rate (OfflineAudioContext.decodeAudioData resamples: Chromium with its sinc
// resampler). Here the clip is checked and cut to MAX_SECONDS; a clip at another rate (a
// microphone, another caller) is resampled with the windowed-sinc resample() below. Python
// (modhub.runtimes.audio) resamples with libsoxr "HQ"; docs/web.md gives how close both are.
// Inputs with a `segment` (CREPE) are run segment by segment exactly as
// modhub.runtimes.calls._Segmenter does, so each frame equals Python's.

import { TryItError, registerTask } from "./core.js";

// The longest clip the panel runs (seconds); a longer one is cut, and the page says so.
export const MAX_SECONDS = 60;
// CREPE is the slow one (about 4 s of compute per second of sound in one WASM thread).
export const MAX_PITCH_SECONDS = 20;
// Sample sounds the hub makes at serve time (server/web/samples.py): speech by espeak-ng (when
// installed), tones by numpy.
const SAMPLES = "/static/tryit/samples/";
const sound = (name, label) => ({ label, url: `${SAMPLES}${name}.wav` });
const SPEECH = sound("speech", "A spoken sentence");
const TONE = sound("tone-440", "A 440 Hz tone");
const MELODY = sound("melody", "A3, C#4, E4, A4");
const WORDS = [
  sound("hey-jarvis-1", '"hey jarvis" (voice 1)'),
  sound("hey-jarvis-2", '"hey jarvis" (voice 2)'),
  sound("good-morning-1", '"good morning" (voice 1)'),
];
const SPEECH_THRESHOLD = 0.5; // silero-vad's default, as the module card says
const VOICED_THRESHOLD = 0.5; // CREPE's confidence under which a frame is unvoiced

// ----------------------------------------------------------------------------- resampling

const ZEROS = 32; // zero crossings of the sinc on each side
const KAISER_BETA = 8.0; // about 80 dB stopband attenuation
const ROLLOFF = 0.955; // cutoff, as a fraction of the lower Nyquist frequency
const TABLE_STEPS = 512; // kernel samples per zero crossing (linear interpolation between)

function besselI0(x) {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 40; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

let kernelTable = null;
function kernel() {
  // sinc(u) * kaiser(u / ZEROS) for u in [0, ZEROS] zero crossings.
  if (kernelTable === null) {
    kernelTable = new Float64Array(ZEROS * TABLE_STEPS + 2);
    const norm = besselI0(KAISER_BETA);
    for (let i = 0; i <= ZEROS * TABLE_STEPS; i++) {
      const u = i / TABLE_STEPS;
      const sinc = u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u);
      const r = u / ZEROS;
      kernelTable[i] = (sinc * besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - r * r)))) / norm;
    }
  }
  return kernelTable;
}

/**
 * ``input`` (at ``from`` Hz) resampled to ``to`` Hz: band-limited interpolation with a
 * Kaiser-windowed sinc (32 zero crossings each side, beta 8, cutoff at 95.5% of the lower Nyquist
 * frequency), linear phase, the signal taken as zero outside the clip; round(n * to / from)
 * samples, as soxr gives. Measured against Python's soxr "HQ" (docs/web.md): espeak-ng speech
 * 22.05 -> 16 kHz differs by -47 dB of the signal (the difference lies near 8 kHz, where the two
 * filters roll off differently), a 44.1 kHz melody by -93 dB.
 */
export function resample(input, from, to) {
  if (from === to) return input;
  const length = Math.round((input.length * to) / from);
  const out = new Float32Array(length);
  const step = from / to; // input samples per output sample
  const cutoff = 0.5 * Math.min(1, to / from) * ROLLOFF; // cycles per input sample
  const crossings = 2 * cutoff; // zero crossings per input sample
  const half = ZEROS / crossings; // half-width of the kernel, input samples
  const table = kernel();
  const scale = crossings * TABLE_STEPS;
  for (let n = 0; n < length; n++) {
    const t = n * step;
    const first = Math.max(0, Math.ceil(t - half));
    const last = Math.min(input.length - 1, Math.floor(t + half));
    let sum = 0;
    for (let k = first; k <= last; k++) {
      const pos = Math.abs(k - t) * scale;
      const i = Math.floor(pos);
      const frac = pos - i;
      sum += input[k] * (table[i] + frac * (table[i + 1] - table[i]));
    }
    out[n] = sum * crossings;
  }
  return out;
}

// ------------------------------------------------------------------------------ decoding

/** A sample's sound decoded by the browser at ``rate`` Hz, channels averaged (as core.js decodes). */
async function fetchClip(url, rate) {
  const response = await fetch(url);
  if (!response.ok) throw new TryItError(`the sample ${url} is missing on this hub (HTTP ${response.status})`);
  const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(await response.arrayBuffer());
  const audio = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < audio.length; i++) audio[i] += channel[i] / decoded.numberOfChannels;
  }
  return { audio, sampleRate: decoded.sampleRate };
}

// ----------------------------------------------------------------------- the module's call

function audioInput(ctx) {
  const spec = ctx.manifest.signatures.default.inputs.find((s) => s.kind === "audio");
  if (!spec || !spec.sample_rate) throw new TryItError("this module's default signature takes no audio with a sample_rate");
  return spec;
}

/** The clip checked, cut to ``maxSeconds`` and resampled to the input's rate; {wave, note}. */
export function prepareClip(input, spec, maxSeconds = MAX_SECONDS) {
  const { audio, sampleRate } = input;
  if (!audio || audio.length === 0) throw new TryItError("the clip is empty (no samples): record or choose another");
  if (!(sampleRate >= 1)) throw new TryItError(`the clip's sample rate (${sampleRate}) is not usable`);
  let clip = audio;
  let note = "";
  if (clip.length > maxSeconds * sampleRate) {
    note = `the clip lasts ${(clip.length / sampleRate).toFixed(0)} s; the first ${maxSeconds} s were used ` +
      "(run longer clips in Python)";
    clip = clip.subarray(0, maxSeconds * sampleRate);
  }
  for (const v of clip) {
    if (!Number.isFinite(v)) throw new TryItError("the waveform holds NaN or infinite samples");
  }
  const wave = resample(clip, sampleRate, spec.sample_rate);
  if (wave.length === 0) throw new TryItError(`the clip is shorter than one sample at ${spec.sample_rate} Hz`);
  return { wave, note };
}

function feed(ctx, spec, wave) {
  const dims = spec.shape.length === 2 ? [1, wave.length] : [wave.length];
  return new ctx.ort.Tensor("float32", wave, dims);
}

/** How the graph's long input is cut (modhub.runtimes.calls._segmenter), or null. */
function segmenter(sig, spec) {
  if (!spec.segment) return null;
  const rate = spec.sample_rate;
  const frameHop = sig.outputs[0].frame_hop;
  const hop = Math.round(frameHop * rate);
  const length = Math.max(...sig.outputs.map((o) => o.frame_length || o.frame_hop));
  const context = length > frameHop ? Math.ceil(Math.round(length * rate * 1e6) / 1e6 / hop) * hop : 0;
  const segment = Math.floor(spec.segment * rate);
  const core = Math.floor((segment - 2 * context) / hop);
  const batch = spec.shape.length > 1;
  const axes = {};
  for (const out of sig.outputs) {
    axes[out.name] = out.shape.findIndex((d, i) => typeof d === "string" && (!batch || i > 0));
  }
  return { segment, hop, context, core, axes };
}

/** Frames along ``axis`` of a tensor: {rows: [Float32Array per frame], dims}. */
function framesOf(tensor, axis) {
  const dims = tensor.dims;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const count = dims[axis];
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  if (outer !== 1) throw new TryItError("a batch of one clip was expected");
  const rows = [];
  for (let f = 0; f < count; f++) rows.push(tensor.data.subarray(f * inner, (f + 1) * inner));
  return rows;
}

/** The default signature on ``wave``: per-frame outputs as {name: [row per frame]} (rows are Float32Array). */
async function runFrames(ctx, spec, wave) {
  const sig = ctx.manifest.signatures.default;
  const cut = segmenter(sig, spec);
  const axisOf = (out) => (cut ? cut.axes[out.name] : out.shape.length - (out.shape.length >= 3 ? 2 : 1));
  const collect = (outputs, skip, keep) => {
    const got = {};
    for (const out of sig.outputs) {
      const rows = framesOf(outputs[out.name], axisOf(out));
      got[out.name] = rows.slice(skip, keep === null ? undefined : skip + keep);
    }
    return got;
  };
  if (!cut || wave.length <= cut.segment) {
    return collect(await ctx.session.run({ [spec.name]: feed(ctx, spec, wave) }), 0, null);
  }
  const result = Object.fromEntries(sig.outputs.map((o) => [o.name, []]));
  for (let first = 0; ; first += cut.core) {
    const start = Math.max(0, first * cut.hop - cut.context);
    const end = Math.min(wave.length, (first + cut.core) * cut.hop + cut.context);
    const last = end >= wave.length;
    const outputs = await ctx.session.run({ [spec.name]: feed(ctx, spec, wave.slice(start, end)) });
    const skip = Math.floor((first * cut.hop - start) / cut.hop);
    const got = collect(outputs, skip, last ? null : cut.core);
    for (const name of Object.keys(result)) result[name].push(...got[name]);
    if (last) break;
  }
  return result;
}

// ---------------------------------------------------------------------------------- drawing

function element(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  el.append(...children);
  return el;
}

function writeData(ctx, task, data) {
  const pre = element("pre", { className: "tryit-data", hidden: true, textContent: JSON.stringify(data) });
  pre.dataset.task = task;
  ctx.out.append(pre);
}

const SERIES_COLOURS = ["rgb(0, 130, 200)", "rgb(230, 25, 75)", "rgb(60, 180, 75)"];

/**
 * A line plot over time on a canvas: ``series`` [{label, values (null = gap), colour}], one value
 * per ``hop`` seconds; ``range`` [low, high] of the y axis (``log`` for Hz), ``threshold`` a dashed
 * line, ``shade`` per frame (true = shaded background).
 */
function plot(ctx, { series, hop, range, log = false, yLabel, threshold = null, shade = null, caption }) {
  const width = 900;
  const height = 240;
  const pad = { left: 56, right: 12, top: 12, bottom: 34 };
  const canvas = element("canvas", { width, height, className: "tryit-canvas tryit-plot" });
  canvas.style.maxWidth = "100%";
  canvas.style.height = "auto";
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, width, height);
  const frames = Math.max(1, ...series.map((s) => s.values.length));
  const seconds = frames * hop;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const xOf = (t) => pad.left + (t / seconds) * plotW;
  const [low, high] = range;
  const norm = (v) => (log ? Math.log(v / low) / Math.log(high / low) : (v - low) / (high - low || 1));
  const yOf = (v) => pad.top + plotH * (1 - Math.min(1, Math.max(0, norm(v))));
  if (shade) {
    g.fillStyle = "rgba(60, 180, 75, 0.18)";
    shade.forEach((on, f) => on && g.fillRect(xOf(f * hop), pad.top, xOf((f + 1) * hop) - xOf(f * hop) + 0.5, plotH));
  }
  g.strokeStyle = "#888";
  g.lineWidth = 1;
  g.strokeRect(pad.left, pad.top, plotW, plotH);
  g.fillStyle = "#333";
  g.font = "13px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "top";
  const tick = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30].find((s) => seconds / s <= 10) || 60;
  for (let t = 0; t <= seconds + 1e-9; t += tick) g.fillText(`${+t.toFixed(1)} s`, xOf(t), height - pad.bottom + 6);
  g.textAlign = "right";
  g.textBaseline = "middle";
  const ticks = log ? [low, Math.sqrt(low * high), high] : [low, (low + high) / 2, high];
  for (const v of ticks) g.fillText(String(+v.toPrecision(3)), pad.left - 6, yOf(v));
  g.save();
  g.translate(14, pad.top + plotH / 2);
  g.rotate(-Math.PI / 2);
  g.textAlign = "center";
  g.fillText(yLabel, 0, 0);
  g.restore();
  if (threshold !== null) {
    g.setLineDash([5, 4]);
    g.strokeStyle = "#555";
    g.beginPath();
    g.moveTo(pad.left, yOf(threshold));
    g.lineTo(pad.left + plotW, yOf(threshold));
    g.stroke();
    g.setLineDash([]);
  }
  g.lineWidth = 2;
  for (const s of series) {
    g.strokeStyle = s.colour;
    g.beginPath();
    let drawing = false;
    s.values.forEach((v, f) => {
      if (v === null || !Number.isFinite(v)) {
        drawing = false;
        return;
      }
      const x = xOf((f + 0.5) * hop);
      if (drawing) g.lineTo(x, yOf(v));
      else g.moveTo(x, yOf(v));
      drawing = true;
    });
    g.stroke();
  }
  const figure = element("figure", { className: "tryit-figure" }, [canvas]);
  const legend = series.length > 1 ? ` (${series.map((s, i) => `${s.label}: ${["blue", "red", "green"][i]}`).join(", ")})` : "";
  figure.append(element("figcaption", { textContent: caption + legend }));
  ctx.out.append(figure);
}

function noteIf(ctx, note) {
  if (note) ctx.out.append(element("p", { className: "tryit-note", textContent: note }));
}

// ------------------------------------------------------------- voice activity, sound events

registerTask(["audio-event-classification", "audio-command-detection"], {
  input: "audio",
  samples: [SPEECH, TONE],
  async run(ctx, input) {
    const spec = audioInput(ctx);
    const { wave, note } = prepareClip(input, spec);
    const sig = ctx.manifest.signatures.default;
    const scoresSpec = sig.outputs.find((o) => o.kind === "scores") || sig.outputs[0];
    const rows = (await runFrames(ctx, spec, wave))[scoresSpec.name];
    const hop = scoresSpec.frame_hop || wave.length / spec.sample_rate / Math.max(1, rows.length);
    const classes = rows.length ? rows[0].length : 0;
    const labels = ctx.labels || [];
    const name = (c) => labels[c] || `class ${c}`;
    const stats = Array.from({ length: classes }, (_, c) => {
      let sum = 0;
      let over = 0;
      for (const r of rows) {
        sum += r[c];
        if (r[c] > SPEECH_THRESHOLD) over++;
      }
      return { label: name(c), mean: sum / rows.length, share_over_threshold: over / rows.length };
    });
    const top = stats.map((s, c) => [s.mean, c]).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([, c]) => c);
    const series = top.map((c, i) => ({ label: name(c), values: rows.map((r) => r[c]), colour: SERIES_COLOURS[i] }));
    const one = classes === 1;
    const over = one ? rows.map((r) => r[0] > SPEECH_THRESHOLD) : null;
    const seconds = one ? over.filter(Boolean).length * hop : 0;
    plot(ctx, {
      series,
      hop,
      range: [0, 1],
      yLabel: "probability",
      threshold: SPEECH_THRESHOLD,
      shade: over,
      caption: one
        ? `${name(0)} in ${over.filter(Boolean).length} of ${rows.length} frames (${seconds.toFixed(2)} s; ` +
          `probability over ${SPEECH_THRESHOLD}, shaded)`
        : `the ${top.length} classes with the highest mean score, per frame`,
    });
    if (!one) {
      const list = element("ol", { className: "tryit-list" });
      for (const c of stats.map((s, i) => [s.mean, i]).sort((a, b) => b[0] - a[0]).slice(0, 5)) {
        list.append(element("li", { textContent: `${name(c[1])} ${c[0].toFixed(3)} (mean)` }));
      }
      ctx.out.append(list);
    }
    noteIf(ctx, note);
    writeData(ctx, ctx.manifest.task, {
      frames: rows.length,
      frame_hop: hop,
      threshold: SPEECH_THRESHOLD,
      classes: stats.map((s) => ({ ...s, mean: +s.mean.toFixed(4), share_over_threshold: +s.share_over_threshold.toFixed(4) })),
      scores: one ? rows.map((r) => +r[0].toFixed(4)) : undefined,
    });
  },
});

// ------------------------------------------------------------------------------------ pitch

registerTask(["audio-pitch-extraction"], {
  input: "audio",
  samples: [MELODY, SPEECH, TONE],
  async run(ctx, input) {
    const spec = audioInput(ctx);
    const { wave, note } = prepareClip(input, spec, MAX_PITCH_SECONDS);
    const sig = ctx.manifest.signatures.default;
    const got = await runFrames(ctx, spec, wave);
    const pitchSpec = sig.outputs.find((o) => o.name === "pitch") || sig.outputs[0];
    const pitch = got[pitchSpec.name].map((r) => r[0]);
    const confidenceSpec = sig.outputs.find((o) => o.name === "confidence");
    const uncertaintySpec = sig.outputs.find((o) => o.name === "uncertainty");
    const voiced = confidenceSpec
      ? got[confidenceSpec.name].map((r) => r[0] >= VOICED_THRESHOLD)
      : uncertaintySpec
        ? got[uncertaintySpec.name].map((r) => r[0] <= 1 - VOICED_THRESHOLD)
        : pitch.map(() => true);
    const hop = pitchSpec.frame_hop || 0.01;
    const heard = pitch.filter((_, f) => voiced[f] && pitch[f] > 0).sort((a, b) => a - b);
    const median = heard.length ? heard[Math.floor(heard.length / 2)] : null;
    const low = heard.length ? Math.max(30, heard[0] / 1.25) : 50;
    const high = heard.length ? Math.max(low * 2, heard[heard.length - 1] * 1.25) : 2000;
    plot(ctx, {
      series: [{ label: "pitch", values: pitch.map((v, f) => (voiced[f] && v > 0 ? v : null)), colour: SERIES_COLOURS[0] }],
      hop,
      range: [low, high],
      log: true,
      yLabel: "Hz",
      caption: heard.length
        ? `pitch of the ${heard.length} voiced frames of ${pitch.length} (median ${median.toFixed(1)} Hz; ` +
          `frames with a confidence under ${VOICED_THRESHOLD} are left out)`
        : `no voiced frame (confidence ${VOICED_THRESHOLD} or more) in ${pitch.length}`,
    });
    noteIf(ctx, note);
    writeData(ctx, "audio-pitch-extraction", {
      frames: pitch.length,
      frame_hop: hop,
      voiced: heard.length,
      median_hz: median === null ? null : +median.toFixed(2),
      pitch: pitch.map((v, f) => (voiced[f] ? +v.toFixed(2) : null)),
    });
  },
});

// ------------------------------------------------------------------------------- embeddings

function meanRow(rows) {
  const out = new Float64Array(rows[0].length);
  for (const r of rows) r.forEach((v, i) => (out[i] += v / rows.length));
  return out;
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na * nb) || 1);
}

function matrixTable(labels, matrix) {
  const table = element("table", { className: "tryit-matrix" });
  // Shaded from the lowest similarity (white) to 1 (blue).
  const low = Math.min(...matrix.flat());
  table.append(element("tr", {}, [element("th"), ...labels.map((l) => element("th", { textContent: l, scope: "col" }))]));
  matrix.forEach((row, i) => {
    const cells = row.map((v) => {
      const td = element("td", { textContent: v.toFixed(2) });
      const shade = low < 1 ? (v - low) / (1 - low) : 1;
      td.style.background = `rgba(0, 130, 200, ${(0.1 + 0.9 * shade).toFixed(2)})`;
      td.style.color = shade > 0.6 ? "#fff" : "#000";
      return td;
    });
    table.append(element("tr", {}, [element("th", { textContent: labels[i], scope: "row" }), ...cells]));
  });
  return table;
}

registerTask(["audio-embedding", "audio-paralinguistics"], {
  input: "audio",
  samples: WORDS,
  async run(ctx, input) {
    const spec = audioInput(ctx);
    const sig = ctx.manifest.signatures.default;
    const out = sig.outputs.find((o) => o.kind === "embedding") || sig.outputs[0];
    const { wave, note } = prepareClip(input, spec);
    // The visitor's clip against the samples (a chosen sample is not compared with itself twice).
    const chosen = WORDS.some((w) => w.label === input.label);
    const clips = chosen ? [] : [{ label: input.label || "your clip", wave }];
    for (const sample of WORDS) {
      const own = sample.label === input.label;
      const got = own ? wave : prepareClip(await fetchClip(sample.url, spec.sample_rate), spec).wave;
      clips.push({ label: sample.label, wave: got });
    }
    const vectors = [];
    for (const clip of clips) vectors.push(meanRow((await runFrames(ctx, spec, clip.wave))[out.name]));
    const labels = clips.map((c) => c.label);
    const matrix = vectors.map((a) => vectors.map((b) => cosine(a, b)));
    ctx.out.append(
      element("p", { textContent: "Cosine similarity of the clips' embeddings (frames averaged)." }),
      matrixTable(labels, matrix),
    );
    noteIf(ctx, note);
    writeData(ctx, ctx.manifest.task, {
      labels,
      dimensions: vectors[0].length,
      matrix: matrix.map((r) => r.map((v) => +v.toFixed(4))),
    });
  },
});
