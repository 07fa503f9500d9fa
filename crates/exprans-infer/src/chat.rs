//! Chat templates: the Jinja `chat_template` of a Hugging Face `tokenizer_config.json`, rendered
//! into the prompt text of a conversation, as `transformers`' `apply_chat_template` renders it.
//!
//! The template runs on MiniJinja with the environment `transformers` gives Jinja2:
//! `trim_blocks` and `lstrip_blocks` on, no auto-escaping, loop controls (`break`,
//! `continue`), `raise_exception(message)` failing the render with `message`, and `tojson`
//! writing JSON as Python's `json.dumps` does (`", "` and `": "` separators, non-ASCII kept,
//! `indent`, `separators`, `sort_keys` and `ensure_ascii` arguments). Python string, dict and
//! list methods (`.strip()`, `.startswith()`, `.items()`, ...) are available. The context holds
//! `messages`, `add_generation_prompt`, and `bos_token` / `eos_token` when the configuration
//! names them. `strftime_now` is not defined (templates that test for it fall back to their
//! fixed date), nor is the `{% generation %}` tag.

use std::fmt::Write;

use exprans::{Error, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, Value};

/// The name the template is registered under (it appears in render errors).
const NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// `"system"`, `"user"`, `"assistant"` (or any role the template knows).
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl Message {
    /// A message of `role` with `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template and the special tokens it is rendered with.
///
/// Invariant: the template parsed (syntax errors are reported when it is made, not when it is
/// rendered).
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

/// `chat template: {e}` as an [`Error::invalid`] on one line.
fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    Error::invalid(format!(
        "{what}: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// A special token of `tokenizer_config.json`: a string, `{"content": ...}` or absent/null.
fn special_token(config: &serde_json::Value, key: &str) -> Result<Option<String>> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => match v.get("content").and_then(|c| c.as_str()) {
            Some(s) => Ok(Some(s.to_string())),
            None => Err(Error::invalid(format!(
                "tokenizer_config.json: {key} is neither a string nor an object with a string \
                 \"content\""
            ))),
        },
    }
}

impl ChatTemplate {
    /// Reads the chat template of a `tokenizer_config.json` (or `chat_template.json`) text:
    /// `chat_template` is a template string, or a list of `{"name", "template"}` of which the
    /// one named `"default"` is taken. `None` when the file has no `chat_template`.
    pub fn from_tokenizer_config(json_text: &str) -> Result<Option<ChatTemplate>> {
        let config: serde_json::Value =
            serde_json::from_str(json_text).map_err(|e| invalid("tokenizer_config.json", e))?;
        if !config.is_object() {
            return Err(Error::invalid(
                "tokenizer_config.json: the top level is not an object",
            ));
        }
        let source = match config.get("chat_template") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => {
                let mut names = Vec::new();
                let mut found = None;
                for entry in list {
                    let (Some(name), Some(template)) = (
                        entry.get("name").and_then(|n| n.as_str()),
                        entry.get("template").and_then(|t| t.as_str()),
                    ) else {
                        return Err(Error::invalid(
                            "tokenizer_config.json: a chat_template list entry is not \
                             {\"name\": string, \"template\": string}",
                        ));
                    };
                    names.push(name);
                    if name == "default" {
                        found = Some(template.to_string());
                    }
                }
                found.ok_or_else(|| {
                    Error::invalid(format!(
                        "tokenizer_config.json: no chat template named \"default\" (there are: \
                         {})",
                        names.join(", ")
                    ))
                })?
            }
            Some(_) => {
                return Err(Error::invalid(
                    "tokenizer_config.json: chat_template is neither a string nor a list",
                ))
            }
        };
        let bos = special_token(&config, "bos_token")?;
        let eos = special_token(&config, "eos_token")?;
        ChatTemplate::new(&source, bos, eos).map(Some)
    }

    /// Compiles `source` (Jinja), to be rendered with these special tokens (absent ones are
    /// undefined in the template).
    pub fn new(
        source: &str,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| invalid("chat template", e))?;
        env.set_syntax(syntax);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| invalid("chat template", e))?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    /// The prompt text of `messages`; with `add_generation_prompt`, followed by what opens
    /// the assistant's turn. Errors (a failed `raise_exception`, a type error) are
    /// [`Error::invalid`].
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| invalid("chat template", e))?;
        // Each message a map of `role` then `content`, in that order (as `tojson` shows it).
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let mut ctx = vec![
            ("messages", Value::from(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
        ];
        if let Some(b) = &self.bos_token {
            ctx.push(("bos_token", Value::from(b.as_str())));
        }
        if let Some(e) = &self.eos_token {
            ctx.push(("eos_token", Value::from(e.as_str())));
        }
        template
            .render(Value::from_pairs(ctx))
            .map_err(|e| invalid("chat template", e))
    }

    /// The `bos_token` the template is rendered with.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The `eos_token` the template is rendered with.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }
}

/// `raise_exception(message)`: fails the render with `message`.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        message,
    ))
}

/// `value|tojson(indent=None, separators=None, sort_keys=False, ensure_ascii=False)`, as
/// `transformers` defines it: Python's `json.dumps` with those arguments.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_string()),
            _ => return Err(bad_arg("tojson: indent must be an integer or a string")),
        },
    };
    let separators: Option<Value> = kwargs.get("separators")?;
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() && !v.is_undefined() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => (
                    a.as_str().unwrap_or_default().to_string(),
                    b.as_str().unwrap_or_default().to_string(),
                ),
                _ => return Err(bad_arg("tojson: separators must be two strings")),
            }
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    style.write(value, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn bad_arg(message: &str) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message.to_string())
}

/// The formatting arguments of Python's `json.dumps`.
struct JsonStyle {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl JsonStyle {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(indent);
            }
        }
    }

    /// Writes `items` between `open` and `close` as `json.dumps` lays them out.
    fn container<T>(
        &self,
        (open, close): (char, char),
        items: &[T],
        level: usize,
        out: &mut String,
        mut item: impl FnMut(&T, &mut String) -> std::result::Result<(), minijinja::Error>,
    ) -> std::result::Result<(), minijinja::Error> {
        out.push(open);
        if !items.is_empty() {
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&self.item_sep);
                }
                self.newline(level + 1, out);
                item(x, out)?;
            }
            self.newline(level, out);
        }
        out.push(close);
        Ok(())
    }

    fn write(
        &self,
        value: &Value,
        level: usize,
        out: &mut String,
    ) -> std::result::Result<(), minijinja::Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                let text = value.to_string();
                out.push_str(match text.as_str() {
                    "nan" | "NaN" => "NaN",
                    "inf" => "Infinity",
                    "-inf" => "-Infinity",
                    t => t,
                });
            }
            ValueKind::String => self.string(value.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.container(('[', ']'), &items, level, out, |v, out| {
                    self.write(v, level + 1, out)
                })?;
            }
            ValueKind::Map => {
                let mut items = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = match key.as_str() {
                        Some(s) => s.to_string(),
                        None if matches!(key.kind(), ValueKind::Number | ValueKind::Bool) => {
                            let mut s = String::new();
                            self.write(&key, 0, &mut s)?;
                            s
                        }
                        None if key.is_none() => "null".to_string(),
                        None => {
                            return Err(bad_arg(&format!(
                                "tojson: keys must be str, int, float, bool or None, not {}",
                                key.kind()
                            )))
                        }
                    };
                    items.push((key, item));
                }
                if self.sort_keys {
                    items.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(('{', '}'), &items, level, out, |(k, v), out| {
                    self.string(k, out);
                    out.push_str(&self.key_sep);
                    self.write(v, level + 1, out)
                })?;
            }
            kind => {
                return Err(bad_arg(&format!(
                    "tojson: a {kind} value is not JSON serializable"
                )))
            }
        }
        Ok(())
    }

    /// A JSON string literal, escaped as Python's `json` module escapes.
    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn config(template: serde_json::Value) -> String {
        serde_json::json!({
            "bos_token": {"__type": "AddedToken", "content": "<s>"},
            "eos_token": "</s>",
            "chat_template": template,
        })
        .to_string()
    }

    #[test]
    fn string_and_named_templates_with_special_tokens() {
        let t = ChatTemplate::from_tokenizer_config(&config(SMOL.into()))
            .unwrap()
            .unwrap();
        let messages = [Message::new("user", "Hi")];
        assert_eq!(
            t.render(&messages, true).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by \
             Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let list = serde_json::json!([
            {"name": "tool_use", "template": "tools"},
            {"name": "default", "template": "{{ bos_token }}{{ messages|length }}{{ eos_token }}"},
        ]);
        let t = ChatTemplate::from_tokenizer_config(&config(list))
            .unwrap()
            .unwrap();
        assert_eq!((t.bos_token(), t.eos_token()), (Some("<s>"), Some("</s>")));
        assert_eq!(t.render(&messages, false).unwrap(), "<s>1</s>");
        assert!(ChatTemplate::from_tokenizer_config("{}").unwrap().is_none());
        let no_default = serde_json::json!([{"name": "rag", "template": "x"}]);
        let err = ChatTemplate::from_tokenizer_config(&config(no_default)).unwrap_err();
        assert!(
            err.to_string().contains("\"default\" (there are: rag)"),
            "{err}"
        );
    }

    #[test]
    fn trim_lstrip_raise_exception_pycompat_and_tojson() {
        let source = "{% for m in messages %}\n    {% if m.role == 'bad' %}\n        \
                      {{ raise_exception('Roles must be user or assistant') }}\n    {% endif %}\n\
                      [{{ m.content.strip() }}]{% if not loop.last %},{% endif %}\n{% endfor %}\n\
                      {{ messages[0]|tojson }}|{{ {'b': [1, 2.5, none, true], 'a': 'é\"\\n'}|tojson(indent=2, sort_keys=true) }}";
        let t = ChatTemplate::new(source, None, None).unwrap();
        let out = t
            .render(
                &[Message::new("user", "  a  "), Message::new("x", "b\n")],
                false,
            )
            .unwrap();
        assert_eq!(
            out,
            // As Jinja2 renders it (trim_blocks drops the newline after each block tag).
            "[a],[b]{\"role\": \"user\", \"content\": \"  a  \"}|{\n  \"a\": \"é\\\"\\n\",\n  \
             \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ]\n}"
        );
        let err = t.render(&[Message::new("bad", "")], false).unwrap_err();
        assert!(
            err.to_string().contains("Roles must be user or assistant"),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
        // Syntax errors are reported on load, on one line.
        let err = ChatTemplate::new("{% for %}", None, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid input: chat template: "),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
        for bad in [
            "[",
            "[1]",
            r#"{"chat_template": 3}"#,
            r#"{"bos_token": 1, "chat_template": ""}"#,
        ] {
            assert!(ChatTemplate::from_tokenizer_config(bad).is_err(), "{bad}");
        }
    }
}
