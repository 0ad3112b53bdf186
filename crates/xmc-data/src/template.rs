//! The model input template, e.g. `Retailer: {store} Price: {price} Description: {title}`.

use serde::{Deserialize, Serialize};

use crate::record::ProductRecord;

/// The reference work's input format.
pub const DEFAULT_TEMPLATE: &str = "Retailer: {store} Price: {price} Description: {title}";

/// The fields a template may name.
pub const FIELDS: [&str; 7] = ["id", "title", "description", "store", "manufacturer", "brand", "price"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(usize),
}

/// A parsed template; `{name}` is a field, `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InputTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl Default for InputTemplate {
    fn default() -> Self {
        InputTemplate::parse(DEFAULT_TEMPLATE).expect("the default template parses")
    }
}

impl InputTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let index = FIELDS.iter().position(|f| *f == name).ok_or_else(|| {
                        format!("template field `{{{name}}}` is unknown; allowed fields: {}", FIELDS.join(", "))
                    })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(index));
                }
                '}' => return Err(format!("template `{source}` has a `}}` without its `{{`")),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Field(_))) {
            return Err(format!("template `{source}` names no field; allowed fields: {}", FIELDS.join(", ")));
        }
        Ok(InputTemplate { source: source.to_string(), pieces })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders a record; a missing field renders as nothing.
    pub fn render(&self, record: &ProductRecord) -> String {
        let mut out = String::with_capacity(self.source.len() + record.title.len() + 16);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(index) => match FIELDS[*index] {
                    "price" => {
                        if let Some(price) = record.price {
                            out.push_str(&crate::clean::format_price(price));
                        }
                    }
                    name => out.push_str(record.text_field(name).unwrap_or_default()),
                },
            }
        }
        out
    }
}

impl TryFrom<String> for InputTemplate {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        InputTemplate::parse(&value)
    }
}

impl From<InputTemplate> for String {
    fn from(value: InputTemplate) -> Self {
        value.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ProductRecord {
        ProductRecord {
            id: "p1".into(),
            title: "Hornby Train".into(),
            store: Some("Amazon UK".into()),
            price: Some(3.42),
            ..ProductRecord::default()
        }
    }

    #[test]
    fn default_template_renders_the_reference_format() {
        let t = InputTemplate::default();
        assert_eq!(t.render(&record()), "Retailer: Amazon UK Price: 3.42 Description: Hornby Train");
    }

    #[test]
    fn missing_fields_render_empty_never_null() {
        let t = InputTemplate::default();
        let r = ProductRecord { id: "x".into(), title: "T".into(), ..ProductRecord::default() };
        let s = t.render(&r);
        assert_eq!(s, "Retailer:  Price:  Description: T");
        assert!(!s.contains("null") && !s.contains("None"));
    }

    #[test]
    fn braces_escape_and_errors_name_the_field() {
        let t = InputTemplate::parse("{{{title}}}").unwrap();
        assert_eq!(t.render(&record()), "{Hornby Train}");
        let err = InputTemplate::parse("{titel}").unwrap_err();
        assert!(err.contains("titel") && err.contains("allowed fields"), "{err}");
        assert!(InputTemplate::parse("no fields").is_err());
        assert!(InputTemplate::parse("a } b {title}").is_err());
    }
}
