//! BERT WordPiece tokenization, as Hugging Face `tokenizers` does it for a `tokenizer.json` with
//! a `BertNormalizer`, a `BertPreTokenizer` and a `WordPiece` model:
//!
//! 1. normalize: drop NUL, U+FFFD and control/format/private-use characters, turn whitespace into
//!    spaces, put spaces around CJK ideographs, strip accents (canonical decomposition without
//!    nonspacing marks) and lowercase (each as the file's normalizer asks);
//! 2. split on whitespace and around every punctuation character;
//! 3. split each word into the longest vocabulary pieces from the left, continuations prefixed
//!    with `##`; a word with an unmatched rest (or over `max_input_chars_per_word`) becomes
//!    `[UNK]`;
//! 4. add `[CLS]` and `[SEP]`, truncating to the maximum length.
//!
//! Differences from `tokenizers`: canonical decomposition is applied character by character
//! (no reordering of combining marks) and unassigned code points are kept; neither matters for
//! ordinary text.

use std::collections::HashMap;

use super::unicode_tables::{ACCENT_FOLD, NONSPACING_MARKS, OTHER, PUNCTUATION};
use exprans::{Error, Result};

/// A BERT WordPiece tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_word_chars: usize,
    lowercase: bool,
    strip_accents: bool,
    clean_text: bool,
    chinese_chars: bool,
}

#[derive(serde::Deserialize)]
struct TokenizerJson {
    normalizer: Option<NormalizerJson>,
    model: ModelJson,
}

#[derive(serde::Deserialize)]
struct NormalizerJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    clean_text: bool,
    #[serde(default = "yes")]
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    lowercase: bool,
}

fn yes() -> bool {
    true
}

#[derive(serde::Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    vocab: HashMap<String, u32>,
    unk_token: String,
    #[serde(default = "default_prefix")]
    continuing_subword_prefix: String,
    #[serde(default = "default_max_chars")]
    max_input_chars_per_word: usize,
}

fn default_prefix() -> String {
    "##".into()
}

fn default_max_chars() -> usize {
    100
}

impl Tokenizer {
    /// Reads a `tokenizer.json` whose model is `WordPiece` (and normalizer, if any,
    /// `BertNormalizer`).
    pub fn from_json(text: &str) -> Result<Tokenizer> {
        let json: TokenizerJson = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("tokenizer.json: {e}")))?;
        if json.model.kind != "WordPiece" {
            return Err(Error::invalid(format!(
                "tokenizer.json: model type {} is not WordPiece",
                json.model.kind
            )));
        }
        let (clean_text, chinese_chars, strip_accents, lowercase) = match &json.normalizer {
            Some(n) if n.kind == "BertNormalizer" => (
                n.clean_text,
                n.handle_chinese_chars,
                // As in BERT: unset means "follow lowercase".
                n.strip_accents.unwrap_or(n.lowercase),
                n.lowercase,
            ),
            Some(n) => {
                return Err(Error::invalid(format!(
                    "tokenizer.json: normalizer {} is not BertNormalizer",
                    n.kind
                )))
            }
            None => (false, false, false, false),
        };
        let vocab = json.model.vocab;
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| Error::invalid(format!("tokenizer.json: no {token} token")))
        };
        Ok(Tokenizer {
            unk: id(&json.model.unk_token)?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            prefix: json.model.continuing_subword_prefix,
            max_word_chars: json.model.max_input_chars_per_word,
            lowercase,
            strip_accents,
            clean_text,
            chinese_chars,
            vocab,
        })
    }

    /// Token ids of `text`: `[CLS]`, the pieces, `[SEP]`; at most `max_len` ids (`>= 2`).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        'words: for word in pre_tokenize(&self.normalize(text)) {
            for id in self.word_pieces(&word) {
                if ids.len() + 1 >= max_len.max(2) {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    /// The id of a vocabulary token.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Step 1: the normalized text.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text && (c == '\0' || c == '\u{fffd}' || is_control(c)) {
                continue;
            }
            let c = if self.clean_text && is_whitespace(c) {
                ' '
            } else {
                c
            };
            let mut push = |c: char| {
                if self.lowercase {
                    out.extend(c.to_lowercase());
                } else {
                    out.push(c);
                }
            };
            let chinese = self.chinese_chars && is_chinese(c);
            if chinese {
                push(' ');
            }
            if self.strip_accents {
                fold_accents(c, &mut push);
            } else {
                push(c);
            }
            if chinese {
                push(' ');
            }
        }
        out
    }

    /// Step 3: the WordPiece ids of one word.
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        if word.chars().count() > self.max_word_chars {
            return vec![self.unk];
        }
        let mut ids = Vec::new();
        let mut start = 0;
        let mut piece = String::new();
        while start < word.len() {
            // Longest vocabulary piece starting at `start`.
            let mut end = word.len();
            let found = loop {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&piece) {
                    break Some(id);
                }
                match word[start..end].char_indices().next_back() {
                    Some((last, _)) if last > 0 => end = start + last,
                    _ => break None,
                }
            };
            match found {
                Some(id) => ids.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        ids
    }
}

/// Step 2: words split on whitespace, each punctuation character a word of its own.
fn pre_tokenize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || is_punctuation(c) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                words.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = c as u32;
    let i = ranges.partition_point(|&(_, hi)| hi < c);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= c)
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && in_ranges(c, OTHER)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || in_ranges(c, PUNCTUATION)
}

fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Emits `c` decomposed (NFD) without its nonspacing marks.
fn fold_accents(c: char, emit: &mut impl FnMut(char)) {
    const HANGUL_FIRST: u32 = 0xAC00;
    const HANGUL_COUNT: u32 = 11172;
    let code = c as u32;
    if (HANGUL_FIRST..HANGUL_FIRST + HANGUL_COUNT).contains(&code) {
        // Hangul syllables decompose algorithmically into two or three jamo.
        let s = code - HANGUL_FIRST;
        let (l, v, t) = (s / (21 * 28), (s % (21 * 28)) / 28, s % 28);
        for jamo in [0x1100 + l, 0x1161 + v] {
            emit(char::from_u32(jamo).expect("jamo"));
        }
        if t != 0 {
            emit(char::from_u32(0x11A7 + t).expect("jamo"));
        }
    } else if in_ranges(c, NONSPACING_MARKS) {
    } else if let Ok(i) = ACCENT_FOLD.binary_search_by_key(&code, |&(k, _)| k) {
        ACCENT_FOLD[i].1.chars().for_each(emit);
    } else {
        emit(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Tokenizer {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "cafe", ",", "!",
        ];
        let vocab: Vec<String> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| format!("\"{t}\": {i}"))
            .collect();
        let json = format!(
            r###"{{"normalizer": {{"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
               "model": {{"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": {{{}}}}}}}"###,
            vocab.join(",")
        );
        Tokenizer::from_json(&json).unwrap()
    }

    #[test]
    fn pieces_accents_punctuation_and_unknown_words() {
        let t = tiny();
        assert_eq!(
            t.encode("UNAFFABLE, Café!", 64),
            vec![2, 4, 5, 6, 8, 7, 9, 3]
        );
        assert_eq!(t.encode("unaffablex", 64), vec![2, 1, 3]);
        assert_eq!(t.encode("un un un", 4), vec![2, 4, 4, 3]);
        assert_eq!(t.normalize("A\u{200b}b\tÅ 東京"), "ab a  東  京 ");
        assert_eq!(t.normalize("한"), "\u{1112}\u{1161}\u{11ab}");
    }
}
