// Text embedding and text classification in the "try it" panel (see core.js). Texts are
// tokenised in the browser from the module's own tokenizer.json with @huggingface/tokenizers,
// with the padding and truncation of the manifest's TokenizerSpec (as runtimes/preprocessing.py
// TextEncoder does in Python: the file's own padding and truncation are replaced).

import { el, loadTokenizers, registerTask } from "./core.js";
import { batchEncoder } from "./tokens.js";
import { bars, cosineMatrix, similarityTable } from "./tasks-image.js";

const SENTENCES = [
  "A cat is sleeping on the warm windowsill.",
  "The kitten naps in the sun by the window.",
  "Stock markets fell sharply after the announcement.",
  "She is learning to play the violin.",
].map((text) => ({ label: text, text }));

async function encoderFor(ctx) {
  ctx.encoder ??= (async () => {
    const spec = ctx.manifest.preprocessing?.tokenizer;
    if (!spec) ctx.fail("the module's manifest has no tokenizer: the page cannot turn texts into its inputs");
    const [{ Tokenizer }, text] = await Promise.all([loadTokenizers(), ctx.file(spec.file)]);
    return { spec, encode: batchEncoder(Tokenizer, JSON.parse(new TextDecoder().decode(text)), spec) };
  })();
  return ctx.encoder;
}

async function runTexts(ctx, texts) {
  if (!texts.length) ctx.fail("Write at least one text (one per line).");
  const { spec, encode } = await encoderFor(ctx);
  const fields = encode(texts);
  const feeds = {};
  // The tokenizer fields feed the graph's inputs in order (TokenizerSpec.graph_inputs).
  spec.graph_inputs.forEach((field, i) => {
    const rows = fields[field];
    const data = BigInt64Array.from(rows.flat(), (v) => BigInt(v));
    feeds[ctx.session.inputNames[i]] = new ctx.ort.Tensor("int64", data, [rows.length, rows[0].length]);
  });
  const results = await ctx.session.run(feeds);
  const output = results[ctx.session.outputNames[0]];
  const width = output.dims[output.dims.length - 1];
  const vectors = texts.map((_, i) => output.data.slice(i * width, (i + 1) * width));
  // The token ids, for people who want to see them (and for tests: they equal Python's).
  const ids = el("pre", { class: "tryit-ids", text: JSON.stringify(fields.input_ids) });
  ids.dataset.ids = JSON.stringify(fields.input_ids);
  const details = el("details", { class: "tryit-tokens" }, el("summary", { text: "Token ids" }), ids);
  return { vectors, width, details };
}

registerTask("text-embedding", {
  input: "text",
  samples: SENTENCES,
  async run(ctx, { texts }) {
    const { vectors, width, details } = await runTexts(ctx, texts);
    const matrix = cosineMatrix(vectors);
    ctx.out.append(
      el("h3", { text: `Embeddings: ${width} numbers per text` }),
      texts.length > 1 ? similarityTable(texts, matrix, "Cosine similarity of the texts") : el("p", { text: "Add a second line to compare texts." }),
      details,
    );
  },
});

registerTask("text-classification", {
  input: "text",
  samples: [
    { label: "positive", text: "A wonderful, moving film with brilliant acting." },
    { label: "negative", text: "Dull, far too long, and the plot makes no sense." },
  ],
  async run(ctx, { texts }) {
    const { vectors, details } = await runTexts(ctx, texts);
    texts.forEach((text, i) => {
      const scores = Array.from(vectors[i]);
      const max = Math.max(...scores);
      const exps = scores.map((v) => Math.exp(v - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      const top = exps
        .map((e, k) => ({ p: e / sum, k }))
        .sort((a, b) => b.p - a.p)
        .slice(0, 3)
        .map(({ p, k }) => ({ label: ctx.labels?.[k] ?? `class ${k}`, value: p, text: `${(p * 100).toFixed(1)}%` }));
      ctx.out.append(el("div", { class: "tryit-text-result" }, el("p", { class: "tryit-quote", text })), bars(top, `Classes of text ${i + 1}`));
    });
    ctx.out.append(details);
  },
});
