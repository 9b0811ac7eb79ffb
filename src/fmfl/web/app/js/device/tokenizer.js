/**
 * A BERT WordPiece tokenizer read from a bundle's ``tokenizer.json``, producing what the Python device's
 * Hugging Face ``tokenizers`` produces for it (src/fmfl/edge_client/data/text.py): the added special tokens
 * matched in the raw text, BertNormalizer (clean text, spaces around CJK characters, accents stripped by NFD,
 * lowercase), BertPreTokenizer (split on whitespace and punctuation), WordPiece (greedy longest match with the
 * "##" continuation prefix; a word with no match or over max_input_chars_per_word is one unknown token),
 * the "[CLS] $A [SEP]" template, truncation to max_seq_len and right padding with pad_id.
 * Other tokenizer types (BPE, Unigram, other normalizers) are refused with a clear error, not approximated.
 * @module device/tokenizer
 */

import { DataError } from "./errors.js";

const CJK = [[0x4e00, 0x9fff], [0x3400, 0x4dbf], [0x20000, 0x2a6df], [0x2a700, 0x2b73f], [0x2b740, 0x2b81f],
  [0x2b920, 0x2ceaf], [0xf900, 0xfaff], [0x2f800, 0x2fa1f]];
const WHITESPACE = /[\t\n\r\p{White_Space}]/u;
const CONTROL = /\p{C}/u; // Cc, Cf, Cs, Co, Cn: Rust's char::is_other
const PUNCTUATION = /[!-/:-@[-`{-~]|\p{P}/u; // ASCII punctuation or a Unicode P* character
const MARK = /\p{Mn}/u;

/** @param {number} cp */
const isCjk = (cp) => CJK.some(([a, b]) => cp >= a && cp <= b);

export class WordPieceTokenizer {
  /**
   * @param {Record<string, any>} json  the parsed tokenizer.json
   * @param {string} [name]  for messages
   */
  constructor(json, name = "tokenizer.json") {
    const model = json.model ?? {};
    const norm = json.normalizer, pre = json.pre_tokenizer, post = json.post_processor;
    if (model.type !== "WordPiece") throw new DataError(`${name}: tokenizer model ${JSON.stringify(model.type)} is not supported in the browser (WordPiece)`);
    if (norm && norm.type !== "BertNormalizer") throw new DataError(`${name}: normalizer ${JSON.stringify(norm.type)} is not supported in the browser (BertNormalizer)`);
    if (pre && pre.type !== "BertPreTokenizer") throw new DataError(`${name}: pre-tokenizer ${JSON.stringify(pre.type)} is not supported in the browser (BertPreTokenizer)`);
    if (post && post.type !== "TemplateProcessing" && post.type !== "BertProcessing") {
      throw new DataError(`${name}: post-processor ${JSON.stringify(post.type)} is not supported in the browser`);
    }
    /** @type {Map<string, number>} */
    this.vocab = new Map(Object.entries(model.vocab ?? {}));
    this.unk = /** @type {number} */ (this.vocab.get(model.unk_token ?? "[UNK]"));
    if (this.unk === undefined) throw new DataError(`${name}: the unknown token ${model.unk_token} is not in the vocabulary`);
    this.prefix = model.continuing_subword_prefix ?? "##";
    this.maxChars = model.max_input_chars_per_word ?? 100;
    this.normalizer = norm ?? null;
    this.splitsPunctuation = Boolean(pre);
    // The template's special tokens around the sequence ("[CLS] $A [SEP]" for BERT).
    /** @type {number[]} */
    this.before = [];
    /** @type {number[]} */
    this.after = [];
    if (post) {
      const single = post.type === "BertProcessing" ? [{ SpecialToken: { id: post.cls[0] } }, { Sequence: { id: "A" } }, { SpecialToken: { id: post.sep[0] } }] : post.single;
      let seen = false;
      for (const piece of single) {
        if (piece.Sequence) { seen = true; continue; }
        const token = piece.SpecialToken.id;
        const ids = post.special_tokens?.[token]?.ids ?? [this.vocab.get(token)];
        (seen ? this.after : this.before).push(...ids);
      }
    }
    /** added tokens matched in the raw text before normalization, longest first */
    this.added = (json.added_tokens ?? []).map((/** @type {any} */ t) => [t.content, t.id]).sort((/** @type {any} */ a, /** @type {any} */ b) => b[0].length - a[0].length);
  }

  /** BertNormalizer. @param {string} text */
  normalize(text) {
    const n = this.normalizer;
    if (!n) return text;
    let out = "";
    for (const ch of text) {
      const cp = /** @type {number} */ (ch.codePointAt(0));
      if (n.clean_text) {
        if (cp === 0 || cp === 0xfffd || (CONTROL.test(ch) && !WHITESPACE.test(ch))) continue;
        if (WHITESPACE.test(ch)) { out += " "; continue; }
      }
      out += n.handle_chinese_chars && isCjk(cp) ? ` ${ch} ` : ch;
    }
    const strip = n.strip_accents ?? n.lowercase;
    if (strip) out = Array.from(out.normalize("NFD")).filter((c) => !MARK.test(c)).join("");
    // Per character, as Rust's char::to_lowercase: no context rules (a final capital sigma stays σ, not ς).
    if (n.lowercase) out = Array.from(out, (c) => c.toLowerCase()).join("");
    return out;
  }

  /** BertPreTokenizer: words split on whitespace, each punctuation character a word. @param {string} text */
  preTokenize(text) {
    /** @type {string[]} */
    const words = [];
    let word = "";
    for (const ch of text) {
      if (WHITESPACE.test(ch)) { if (word) words.push(word); word = ""; }
      else if (this.splitsPunctuation && PUNCTUATION.test(ch)) { if (word) words.push(word); words.push(ch); word = ""; }
      else word += ch;
    }
    if (word) words.push(word);
    return words;
  }

  /** WordPiece of one word. @param {string} word @returns {number[]} */
  wordPiece(word) {
    const chars = Array.from(word);
    if (chars.length > this.maxChars) return [this.unk];
    const ids = [];
    for (let start = 0; start < chars.length;) {
      let end = chars.length, found;
      for (; end > start; end--) {
        const piece = (start > 0 ? this.prefix : "") + chars.slice(start, end).join("");
        found = this.vocab.get(piece);
        if (found !== undefined) break;
      }
      if (found === undefined) return [this.unk];
      ids.push(found);
      start = end;
    }
    return ids;
  }

  /**
   * The token ids of one text, without special tokens or truncation.
   * @param {string} text
   */
  ids(text) {
    /** @type {number[]} */
    const out = [];
    const run = (/** @type {string} */ part) => {
      for (const word of this.preTokenize(this.normalize(part))) out.push(...this.wordPiece(word));
    };
    let rest = text;
    while (rest.length) {
      let at = -1, hit = null;
      for (const [content, id] of this.added) {
        const i = rest.indexOf(content);
        if (i >= 0 && (at < 0 || i < at)) { at = i; hit = [content, id]; }
      }
      if (hit === null) { run(rest); break; }
      run(rest.slice(0, at));
      out.push(hit[1]);
      rest = rest.slice(at + hit[0].length);
    }
    return out;
  }

  /**
   * Encode texts into [N, maxLen] int64 arrays (input_ids, attention_mask, token_type_ids), truncating the
   * sequence so that it fits with its special tokens and padding on the right with ``padId``.
   * @param {string[]} texts
   * @param {number} maxLen
   * @param {number} padId
   * @returns {{input_ids: BigInt64Array, attention_mask: BigInt64Array, token_type_ids: BigInt64Array}}
   */
  encodeBatch(texts, maxLen, padId = 0) {
    const n = texts.length;
    const ids = new BigInt64Array(n * maxLen).fill(BigInt(padId));
    const mask = new BigInt64Array(n * maxLen);
    const types = new BigInt64Array(n * maxLen);
    const room = Math.max(0, maxLen - this.before.length - this.after.length);
    texts.forEach((text, i) => {
      const seq = [...this.before, ...this.ids(text).slice(0, room), ...this.after].slice(0, maxLen);
      seq.forEach((id, j) => { ids[i * maxLen + j] = BigInt(id); mask[i * maxLen + j] = 1n; });
    });
    return { input_ids: ids, attention_mask: mask, token_type_ids: types };
  }
}
