// Texts to token ids as modhub's Python side makes them (runtimes/preprocessing.py
// TextEncoder): @huggingface/tokenizers reads the module's tokenizer.json; the manifest's
// TokenizerSpec then decides truncation and padding (the file's own settings are not used).
// No DOM here: Node.js runs it too (docs/web.md).

function visitorError(message) {
  const error = new Error(message);
  error.name = "TryItError"; // core.js shows its message as it is
  return error;
}

// runtimes/tokenizer_guard.py MAX_TEXT_CHARS.
export const MAX_TEXT_CHARS = 100_000;

function sameAt(full, bare, offset) {
  for (let i = 0; i < bare.length; i++) if (full[offset + i] !== bare[i]) return false;
  return true;
}

/**
 * A batch encoder for a TokenizerSpec: encode(texts) -> {input_ids, attention_mask,
 * token_type_ids}, each an array of rows of numbers, padded and truncated as Python's.
 * ``Tokenizer`` is @huggingface/tokenizers' class, ``json`` the parsed tokenizer.json.
 */
export function batchEncoder(Tokenizer, json, spec) {
  const tokenizer = new Tokenizer(json, {});
  const one = (text) => {
    const full = tokenizer.encode(text, { return_token_type_ids: true });
    const ids = full.ids;
    if (!spec.truncation || ids.length <= spec.max_length) {
      return { ids, mask: full.attention_mask, types: full.token_type_ids || ids.map(() => 0) };
    }
    // Truncate the text's own tokens, keeping the special tokens the post-processor adds
    // (Rust's truncation does the same: max_length counts them).
    const bare = tokenizer.encode(text, { add_special_tokens: false }).ids;
    const added = ids.length - bare.length;
    let offset = 0;
    while (offset <= added && !sameAt(ids, bare, offset)) offset++;
    if (offset > added) throw visitorError("the tokenizer's special tokens are not around the text; cannot truncate it");
    const keep = Math.max(0, spec.max_length - added);
    const idsOut = [...ids.slice(0, offset), ...bare.slice(0, keep), ...ids.slice(offset + bare.length)];
    const types = full.token_type_ids || ids.map(() => 0);
    const typesOut = [...types.slice(0, offset), ...types.slice(offset, offset + keep), ...types.slice(offset + bare.length)];
    return { ids: idsOut, mask: idsOut.map(() => 1), types: typesOut };
  };
  return (texts) => {
    texts.forEach((text, i) => {
      if (text.length > MAX_TEXT_CHARS) {
        throw visitorError(`text ${i + 1} has ${text.length} characters, over the limit of ${MAX_TEXT_CHARS}; shorten it`);
      }
    });
    const rows = texts.map(one);
    const longest = Math.max(0, ...rows.map((r) => r.ids.length));
    const length = Math.max(1, spec.padding === "max_length" ? spec.max_length : longest);
    const pad = (row, value) => [...row, ...Array(Math.max(0, length - row.length)).fill(value)];
    return {
      input_ids: rows.map((r) => pad(r.ids, spec.pad_id ?? 0)),
      attention_mask: rows.map((r) => pad(r.mask, 0)),
      token_type_ids: rows.map((r) => pad(r.types, 0)),
    };
  };
}

