//! The files of a Hugging Face model directory a language model needs, plain or compressed by
//! `exprans compress`: `config.json`, `generation_config.json`, `tokenizer.json`,
//! `tokenizer_config.json` and the safetensors shards.

use exprans::{Error, Result};

use crate::chat::ChatTemplate;
use crate::checkpoint::Shards;
use crate::llama::LlamaConfig;
use crate::tokenizer::Tokenizer;

/// The bytes of one shard: read into memory or mapped.
#[derive(Debug)]
pub enum ShardBytes {
    /// Bytes in memory (e.g. fetched by a browser).
    Owned(Vec<u8>),
    /// A read-only file mapping.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl ShardBytes {
    /// The shard's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ShardBytes::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            ShardBytes::Mapped(m) => m,
        }
    }
}

/// A model directory's files, read.
#[derive(Debug)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: String,
    /// `generation_config.json`, when present.
    pub generation_config: Option<String>,
    /// `tokenizer.json`.
    pub tokenizer: String,
    /// `tokenizer_config.json`, when present.
    pub tokenizer_config: Option<String>,
    /// The shards, in the index's order (or sorted by name).
    pub shards: Vec<(String, ShardBytes)>,
}

/// A language model's description: configuration, tokenizer and chat template.
#[derive(Debug)]
pub struct LanguageModel {
    /// The architecture numbers.
    pub config: LlamaConfig,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template, when `tokenizer_config.json` has one.
    pub chat_template: Option<ChatTemplate>,
    /// Tokens that end a generation: the configs' EOS ids and the tokenizer's EOS token.
    pub stop_ids: Vec<u32>,
}

impl ModelFiles {
    /// Reads the directory `dir`: the JSON files, and the shards named by
    /// `model.safetensors.index.json` (or every `*.safetensors` file, sorted) mapped read-only.
    /// Errors name the directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_dir(dir: &std::path::Path) -> Result<ModelFiles> {
        Self::read_dir_unnamed(dir).map_err(|e| e.in_file(dir))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn read_dir_unnamed(dir: &std::path::Path) -> Result<ModelFiles> {
        use exprans::quote;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| Error::invalid(format!("{name}: {e}")))
        };
        let optional = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                read(name).map(Some)
            } else {
                Ok(None)
            }
        };
        if !dir.is_dir() || !dir.join("config.json").is_file() {
            return Err(Error::invalid(
                "not a model directory (it needs config.json, tokenizer.json and safetensors \
                 shards)",
            ));
        }
        let mut shard_names = Vec::new();
        let index = std::fs::read_dir(dir)
            .map_err(|e| Error::invalid(e.to_string()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".safetensors.index.json"))
            .min();
        if let Some(index) = index {
            let json: serde_json::Value = serde_json::from_str(&read(&index)?)
                .map_err(|e| Error::invalid(format!("{index}: {e}")))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::invalid(format!("{index}: no \"weight_map\" object")))?;
            for file in map.values() {
                let file = file.as_str().ok_or_else(|| {
                    Error::invalid(format!("{index}: a shard name is not a string"))
                })?;
                let plain = std::path::Path::new(file);
                if plain.components().count() != 1 || plain.is_absolute() {
                    return Err(Error::invalid(format!(
                        "{index}: shard {} is outside the directory",
                        quote(file)
                    )));
                }
                if !shard_names.iter().any(|n| n == file) {
                    shard_names.push(file.to_string());
                }
            }
        } else {
            shard_names = std::fs::read_dir(dir)
                .map_err(|e| Error::invalid(e.to_string()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".safetensors"))
                .collect();
            shard_names.sort();
        }
        if shard_names.is_empty() {
            return Err(Error::invalid("no .safetensors shards in the directory"));
        }
        let mut shards = Vec::new();
        for name in shard_names {
            let path = dir.join(&name);
            let file = std::fs::File::open(&path)
                .map_err(|e| Error::invalid(format!("{}: {e}", quote(&name))))?;
            // SAFETY: the mapping is read-only; exprans never writes through it, and a file
            // changed underneath it makes checksums fail rather than memory unsafe reads.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| Error::invalid(format!("{}: {e}", quote(&name))))?;
            shards.push((name, ShardBytes::Mapped(map)));
        }
        Ok(ModelFiles {
            config: read("config.json")?,
            generation_config: optional("generation_config.json")?,
            tokenizer: read("tokenizer.json")?,
            tokenizer_config: optional("tokenizer_config.json")?,
            shards,
        })
    }

    /// Parses every shard's header.
    pub fn shards(&self) -> Result<Shards<'_>> {
        let files: Vec<(&str, &[u8])> = self
            .shards
            .iter()
            .map(|(n, s)| (n.as_str(), s.bytes()))
            .collect();
        Shards::parse(&files)
    }

    /// Reads the configuration, the tokenizer and the chat template.
    pub fn language_model(&self) -> Result<LanguageModel> {
        let config = LlamaConfig::from_json(&self.config, self.generation_config.as_deref())?;
        let tokenizer = Tokenizer::from_json(&self.tokenizer)?;
        let chat_template = match &self.tokenizer_config {
            Some(text) => ChatTemplate::from_tokenizer_config(text)?,
            None => None,
        };
        let mut stop_ids = config.eos_token_ids.clone();
        let eos = chat_template.as_ref().and_then(|t| t.eos_token());
        if let Some(id) = eos.and_then(|t| tokenizer.token_id(t)) {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        if tokenizer.vocab_size() > config.vocab {
            return Err(Error::invalid(format!(
                "tokenizer.json has {} tokens, more than the model's vocabulary of {}",
                tokenizer.vocab_size(),
                config.vocab
            )));
        }
        Ok(LanguageModel {
            config,
            tokenizer,
            chat_template,
            stop_ids,
        })
    }
}
