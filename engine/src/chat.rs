//! Conversations and the model's own chat template, rendered with a Jinja engine (minijinja,
//! set up as transformers sets up jinja2: `trim_blocks`, `lstrip_blocks`, Python string
//! methods) and encoded with the model's tokenizer.

use serde::Serialize;

use crate::error::LoadError;

/// One part of a message's content, serialised as the template expects
/// (`{"type": "text", "text": …}` / `{"type": "image"}`).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Part {
    Text { text: String },
    Image {},
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

impl Message {
    pub fn text(role: Role, text: &str) -> Self {
        Message { role, content: vec![Part::Text { text: text.to_string() }] }
    }
}

/// The template context for a message: system and assistant content as a plain string (as chat
/// front ends send them), user content as a list of parts.
#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: Role,
    content: TemplateContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum TemplateContent<'a> {
    Text(String),
    Parts(&'a [Part]),
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
}

impl ChatTemplate {
    pub fn new(source: &str) -> Result<Self, LoadError> {
        let mut env = minijinja::Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| LoadError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string()).map_err(|e| LoadError::Template(e.to_string()))?;
        Ok(ChatTemplate { env })
    }

    /// Renders `messages`, ending with the assistant prompt when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, LoadError> {
        let msgs: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|m| TemplateMessage {
                role: m.role,
                content: match m.role {
                    Role::User => TemplateContent::Parts(&m.content),
                    _ => TemplateContent::Text(
                        m.content
                            .iter()
                            .filter_map(|p| match p {
                                Part::Text { text } => Some(text.as_str()),
                                Part::Image {} => None,
                            })
                            .collect(),
                    ),
                },
            })
            .collect();
        let tmpl = self.env.get_template("chat").map_err(|e| LoadError::Template(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(&msgs)),
            add_generation_prompt => add_generation_prompt,
            add_vision_id => false,
        })
        .map_err(|e| LoadError::Template(format!("{e:#}")))
    }
}

/// The model's tokenizer (`tokenizer.json`, byte-level BPE).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self, LoadError> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        Ok(Tokenizer { inner })
    }

    /// Ids of a rendered prompt; special tokens in the text are matched, none are added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LoadError> {
        let enc = self.inner.encode(text, false).map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` without special tokens (as `decode(skip_special_tokens=True)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, LoadError> {
        self.inner.decode(ids, true).map_err(|e| LoadError::Tokenizer(e.to_string()))
    }

    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::load::{DirSource, ModelFiles};

    #[derive(serde::Deserialize)]
    struct Reference {
        cases: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        system: Option<String>,
        prompt: String,
        prompt_text: String,
        prompt_ids: Vec<u32>,
    }

    /// The fixtures' templates render and encode exactly as transformers did.
    #[test]
    fn renders_and_encodes_like_transformers() {
        for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
            let dir = std::path::PathBuf::from(format!("{}/../tests/fixtures/{family}", env!("CARGO_MANIFEST_DIR")));
            let files = pollster::block_on(ModelFiles::open(&DirSource(dir.clone()), None, None)).unwrap();
            let tmpl = ChatTemplate::new(&files.chat_template).unwrap();
            let tok = Tokenizer::from_bytes(&files.tokenizer_json).unwrap();
            let r: Reference = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
            for c in r.cases {
                let mut msgs = Vec::new();
                if let Some(s) = &c.system {
                    msgs.push(Message::text(Role::System, s));
                }
                msgs.push(Message::text(Role::User, &c.prompt));
                let text = tmpl.render(&msgs, true).unwrap();
                assert_eq!(text, c.prompt_text, "{family}: rendered prompt");
                assert_eq!(tok.encode(&text).unwrap(), c.prompt_ids, "{family}: prompt ids");
            }
        }
    }

    #[test]
    fn multi_turn_and_images_render() {
        let dir = std::path::PathBuf::from(format!("{}/../tests/fixtures/qwen3_vl", env!("CARGO_MANIFEST_DIR")));
        let files = pollster::block_on(ModelFiles::open(&DirSource(dir), None, None)).unwrap();
        let tmpl = ChatTemplate::new(&files.chat_template).unwrap();
        let msgs = vec![
            Message { role: Role::User, content: vec![Part::Image {}, Part::Text { text: "What is this?".into() }] },
            Message::text(Role::Assistant, "A cat."),
            Message::text(Role::User, "And now?"),
        ];
        let text = tmpl.render(&msgs, true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n\
             <|im_start|>assistant\nA cat.<|im_end|>\n<|im_start|>user\nAnd now?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn broken_templates_are_errors() {
        assert!(ChatTemplate::new("{% if %}").is_err());
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}").unwrap();
        assert!(t.render(&[], true).unwrap_err().to_string().contains("no system role"));
    }
}
