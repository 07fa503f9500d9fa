//! Tokenization with Hugging Face `tokenizers` (pure Rust: the same code and ids natively and
//! on wasm32), loaded from the text of a `tokenizer.json`; and streaming detokenization for text
//! generation ([`Detokenizer`]).
//!
//! Any tokenizer that file describes works: BERT WordPiece (normalizer, pre-tokenizer and the
//! `[CLS] ... [SEP]` post-processor all come from the file), byte-level BPE (GPT-2, Llama 3,
//! SmolLM), SentencePiece-style BPE or Unigram. Nothing here reads files or the network.

use std::sync::Arc;

use exprans::{Error, Result};
use tokenizers::{PostProcessor, TruncationDirection, TruncationParams, TruncationStrategy};

/// A tokenizer read from a `tokenizer.json`. Cheap to clone (the vocabulary is shared).
///
/// Invariants: never pads; truncates only as [`Tokenizer::with_truncation`] set (the file's own
/// `truncation` and `padding` settings are dropped on load).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<tokenizers::Tokenizer>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("max_len", &self.max_len())
            .finish()
    }
}

/// `tokenizer.json: {e}` as an [`Error::invalid`] on one line.
fn invalid(e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    Error::invalid(format!(
        "tokenizer.json: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

impl Tokenizer {
    /// Reads the text of a `tokenizer.json`. Padding and truncation are off, whatever the file
    /// says.
    pub fn from_json(text: &str) -> Result<Tokenizer> {
        let mut inner: tokenizers::Tokenizer = text.parse().map_err(invalid)?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(invalid)?;
        Ok(Tokenizer {
            inner: Arc::new(inner),
        })
    }

    /// This tokenizer truncating every encoding to at most `max_len` ids, the special tokens
    /// [`Tokenizer::encode`] adds included (BERT's `[CLS]` and `[SEP]` are kept; the text's
    /// tokens are cut from the right). `max_len` must be at least 1 and at least
    /// [`Tokenizer::special_tokens_added`] (at exactly that, no text token is kept).
    pub fn with_truncation(mut self, max_len: usize) -> Result<Tokenizer> {
        let added = self.special_tokens_added();
        if max_len == 0 || max_len < added {
            return Err(Error::invalid(format!(
                "tokenizer: a maximum length of {max_len} tokens is less than the {} needed \
                 ({added} special tokens added to every text)",
                added.max(1)
            )));
        }
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        Arc::make_mut(&mut self.inner)
            .with_truncation(Some(params))
            .map_err(invalid)?;
        Ok(self)
    }

    /// The most ids [`Tokenizer::encode`] returns, if truncation is on.
    pub fn max_len(&self) -> Option<usize> {
        self.inner.get_truncation().map(|t| t.max_length)
    }

    /// How many ids the post-processor adds to one text with `add_special_tokens` (2 for
    /// BERT's `[CLS]` and `[SEP]`; 0 for byte-level BPE models such as SmolLM2).
    pub fn special_tokens_added(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false))
    }

    /// The token ids of `text`. With `add_special_tokens`, the post-processor's tokens are
    /// added (BERT: `[CLS] ... [SEP]`); special tokens written in `text` itself (such as
    /// `<|im_start|>`) are always recognised as their single ids. At most
    /// [`Tokenizer::max_len`] ids when truncation is set.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| Error::invalid(format!("tokenizer: cannot encode text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, with the file's decoder (byte-level BPE pieces joined into UTF-8,
    /// `##` continuations glued, ...). Incomplete UTF-8 decodes as U+FFFD. With
    /// `skip_special_tokens`, special tokens are left out. Ids that name no token are skipped,
    /// as Hugging Face does.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::invalid(format!("tokenizer: cannot decode ids: {e}")))
    }

    /// The id of a token of the vocabulary, added tokens (`[CLS]`, `<|im_end|>`) included.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token of an id, if the vocabulary has it.
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The number of distinct tokens: the model's vocabulary and the added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// A streaming detokenizer over this tokenizer (see [`Detokenizer`]).
    pub fn detokenizer(&self, skip_special_tokens: bool) -> Detokenizer {
        Detokenizer::new(self.clone(), skip_special_tokens)
    }
}

/// Turns generated ids, pushed one at a time, into text as soon as it is complete.
///
/// Each push decodes the ids since a prefix offset (one token of context before the text not
/// yet shown, so decoders that treat the first token differently, such as WordPiece's `##` or
/// SentencePiece's leading space, see the same context as in a whole decode) and returns only
/// what follows the text already returned. While the decoded text ends in U+FFFD (a byte-level
/// piece that splits a UTF-8 character), nothing is returned and the ids are held until the
/// character completes; [`Detokenizer::finish`] returns what is still held.
///
/// Invariant: for decoders whose output for a sequence of ids extends their output for each
/// prefix of it (byte-level BPE, WordPiece, Metaspace), the concatenation of everything
/// returned by [`Detokenizer::push`] and [`Detokenizer::finish`] equals
/// [`Tokenizer::decode`] of all the ids pushed.
#[derive(Clone, Debug)]
pub struct Detokenizer {
    tokenizer: Tokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    /// Start of the decoding window: `ids[prefix..read]` is context already returned.
    prefix: usize,
    /// Ids before this have all been returned as text.
    read: usize,
}

impl Detokenizer {
    /// A detokenizer with no ids yet.
    pub fn new(tokenizer: Tokenizer, skip_special_tokens: bool) -> Detokenizer {
        Detokenizer {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds the next id; returns the text it completes (empty while a character is still
    /// incomplete, or for a skipped special token).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.pending()?;
        if text.is_empty() || text.ends_with('\u{fffd}') {
            return Ok(String::new());
        }
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(text)
    }

    /// The text still held back (an incomplete character at the end, as U+FFFD); the
    /// detokenizer is then empty again, ready for a new sequence.
    pub fn finish(&mut self) -> Result<String> {
        let text = self.pending()?;
        self.ids.clear();
        self.prefix = 0;
        self.read = 0;
        Ok(text)
    }

    /// Every id pushed since the last [`Detokenizer::finish`].
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text of `ids[read..]`: the window's decode after its already-returned context.
    fn pending(&self) -> Result<String> {
        let skip = self.skip_special_tokens;
        let shown = self
            .tokenizer
            .decode(&self.ids[self.prefix..self.read], skip)?;
        let all = self.tokenizer.decode(&self.ids[self.prefix..], skip)?;
        Ok(match all.strip_prefix(shown.as_str()) {
            Some(rest) => rest.to_string(),
            // A decoder that rewrote the context: what follows their common prefix.
            None => {
                let common = all
                    .char_indices()
                    .zip(shown.chars())
                    .take_while(|((_, a), b)| a == b)
                    .last()
                    .map_or(0, |((i, c), _)| i + c.len_utf8());
                all[common..].to_string()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WordPiece tokenizer of the old hand-written implementation's test, as a
    /// `tokenizer.json`.
    fn tiny_wordpiece() -> Tokenizer {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "cafe", ",", "!",
        ];
        let vocab: Vec<String> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| format!("\"{t}\": {i}"))
            .collect();
        let json = format!(
            r###"{{"version": "1.0", "truncation": null, "padding": null,
               "added_tokens": [
                 {{"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true}},
                 {{"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true}}],
               "normalizer": {{"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
               "pre_tokenizer": {{"type": "BertPreTokenizer"}},
               "post_processor": {{"type": "TemplateProcessing",
                 "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}},
                            {{"Sequence": {{"id": "A", "type_id": 0}}}},
                            {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
                 "pair": [{{"Sequence": {{"id": "A", "type_id": 0}}}},
                          {{"Sequence": {{"id": "B", "type_id": 1}}}}],
                 "special_tokens": {{
                   "[CLS]": {{"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}},
                   "[SEP]": {{"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}}}},
               "decoder": {{"type": "WordPiece", "prefix": "##", "cleanup": true}},
               "model": {{"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": {{{}}}}}}}"###,
            vocab.join(",")
        );
        Tokenizer::from_json(&json).unwrap()
    }

    /// GPT-2's byte-to-character map: the characters byte-level BPE writes bytes as.
    fn byte_chars() -> Vec<char> {
        let mut direct: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
        direct.extend(u32::from('¡')..=u32::from('¬'));
        direct.extend(u32::from('®')..=u32::from('ÿ'));
        let mut extra = 0;
        (0..256u32)
            .map(|b| {
                if direct.contains(&b) {
                    char::from_u32(b).unwrap()
                } else {
                    extra += 1;
                    char::from_u32(255 + extra).unwrap()
                }
            })
            .collect()
    }

    /// A byte-level BPE tokenizer with one token per byte (id = byte) and no merges: every
    /// multi-byte character is split across ids.
    fn bytes_bpe() -> Tokenizer {
        let vocab: Vec<String> = byte_chars()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}: {i}", serde_json::to_string(&c.to_string()).unwrap()))
            .collect();
        let json = format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
               "normalizer": null,
               "pre_tokenizer": {{"type": "ByteLevel", "add_prefix_space": false,
                 "trim_offsets": true, "use_regex": true}},
               "post_processor": null,
               "decoder": {{"type": "ByteLevel", "add_prefix_space": true,
                 "trim_offsets": true, "use_regex": true}},
               "model": {{"type": "BPE", "dropout": null, "unk_token": null,
                 "continuing_subword_prefix": null, "end_of_word_suffix": null,
                 "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                 "vocab": {{{}}}, "merges": []}}}}"#,
            vocab.join(",")
        );
        Tokenizer::from_json(&json).unwrap()
    }

    #[test]
    fn wordpiece_pieces_accents_punctuation_unknown_words_and_truncation() {
        let t = tiny_wordpiece();
        assert_eq!(
            t.encode("UNAFFABLE, Café!", true).unwrap(),
            vec![2, 4, 5, 6, 8, 7, 9, 3]
        );
        assert_eq!(
            t.encode("UNAFFABLE, Café!", false).unwrap(),
            [4, 5, 6, 8, 7, 9]
        );
        assert_eq!(t.encode("unaffablex", true).unwrap(), vec![2, 1, 3]);
        assert_eq!(t.encode("", true).unwrap(), vec![2, 3]);
        let t4 = t.clone().with_truncation(4).unwrap();
        assert_eq!(t4.encode("un un un", true).unwrap(), vec![2, 4, 4, 3]);
        assert_eq!(t4.max_len(), Some(4));
        assert_eq!(t.max_len(), None);
        assert_eq!(t.encode("un un un", true).unwrap().len(), 5);
        assert_eq!(t.special_tokens_added(), 2);
        let t2 = t.clone().with_truncation(2).unwrap();
        assert_eq!(t2.encode("un un", true).unwrap(), [2, 3]);
        assert!(t.clone().with_truncation(1).is_err());
        assert!(bytes_bpe().with_truncation(0).is_err());
        let b1 = bytes_bpe().with_truncation(1).unwrap();
        assert_eq!(b1.encode("ab", true).unwrap(), [u32::from(b'a')]);
        assert_eq!(
            t.decode(&[2, 4, 5, 6, 8, 7, 9, 3], true).unwrap(),
            "unaffable, cafe!"
        );
        assert_eq!((t.token_id("##aff"), t.token_id("nope")), (Some(5), None));
        assert_eq!(t.id_token(7).as_deref(), Some("cafe"));
        assert_eq!(t.vocab_size(), 10);
    }

    #[test]
    fn bad_json_is_one_line_invalid_error() {
        for text in ["", "{", "{\"model\": {\"type\": \"Nope\"}}", "[1,\n2]"] {
            let err = Tokenizer::from_json(text).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.kind(), exprans::ErrorKind::Invalid, "{msg}");
            assert!(
                msg.contains("tokenizer.json: ") && !msg.contains('\n'),
                "{msg}"
            );
        }
    }

    #[test]
    fn detokenizer_holds_split_characters_and_matches_whole_decode() {
        let t = bytes_bpe();
        let text = "naïve café — 日本語 👍🏽 👨‍👩‍👧 \u{fffd}!";
        let ids = t.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len(), "one id per byte");
        assert_eq!(t.decode(&ids, false).unwrap(), text);
        let mut d = t.detokenizer(false);
        let mut pieces = Vec::new();
        for &id in &ids {
            let piece = d.push(id).unwrap();
            assert!(
                !piece.contains('\u{fffd}') || piece == "\u{fffd}!",
                "{piece:?}"
            );
            pieces.push(piece);
        }
        let rest = d.finish().unwrap();
        assert_eq!(pieces.concat() + &rest, text);
        // Text came out as characters completed: a 4-byte emoji after its fourth byte.
        let thumb = text.find('👍').unwrap();
        assert!(pieces[thumb..thumb + 3].iter().all(String::is_empty));
        assert_eq!(pieces[thumb + 3], "👍");
        // A trailing incomplete character is held, then given by finish.
        let mut d = t.detokenizer(false);
        let cut = &"é".as_bytes()[..1];
        assert_eq!(d.push(u32::from(b'a')).unwrap(), "a");
        assert_eq!(d.push(u32::from(cut[0])).unwrap(), "");
        assert_eq!(d.ids().len(), 2);
        assert_eq!(d.finish().unwrap(), "\u{fffd}");
        assert!(d.ids().is_empty());
        // WordPiece: continuations glued, special tokens skipped.
        let w = tiny_wordpiece();
        let ids = w.encode("UNAFFABLE, Café!", true).unwrap();
        let mut d = w.detokenizer(true);
        let mut out = String::new();
        for &id in &ids {
            out += &d.push(id).unwrap();
        }
        out += &d.finish().unwrap();
        assert_eq!(out, w.decode(&ids, true).unwrap());
    }
}
