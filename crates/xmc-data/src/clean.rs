//! Cleaning rules for raw product fields. Each rule is switched on in a dataset's descriptor.
//!
//! The Flipkart category tree ends most paths with a product line and the product itself
//! (`Clothing >> ... >> Shorts >> Alisha Shorts >> Alisha Solid Women's Cycling Shorts`), which makes
//! nearly every path unique. Two rules cut those tails, applied from the end of the path while
//! either matches:
//! - `drop_product_name_segments`: a last segment that is the product's name: it was truncated by
//!   the source (ends in `...`), or it and the title start the same way (one is a prefix of the
//!   other, compared case- and space-insensitively).
//! - `drop_brand_line_segments`: a last segment that is "<brand> <the segment before it>"
//!   (`Alisha Shorts` under `Shorts`, `Pigeon Woks & Kadhais` under `Woks & Kadhais`).
//!
//! A path left empty by the rules (the source gave only a product name) makes the record unlabelled.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleaningRules {
    /// The separator between category path segments in the raw file (e.g. " > " or " >> ").
    pub path_separator: String,
    /// Trim segments and text, and collapse runs of white space (including U+00A0) to one space.
    pub normalise_whitespace: bool,
    /// Turn the JSON escape `\"` left in some raw paths into `"`.
    pub unescape_quotes: bool,
    pub drop_product_name_segments: bool,
    pub drop_brand_line_segments: bool,
    /// Keep at most this many segments (0 keeps all).
    pub max_depth: usize,
    /// What to do with a record without a category path: skip it (counted in the report) or fail.
    pub unlabelled: RowPolicy,
}

impl Default for CleaningRules {
    fn default() -> Self {
        CleaningRules {
            path_separator: " > ".into(),
            normalise_whitespace: true,
            unescape_quotes: true,
            drop_product_name_segments: false,
            drop_brand_line_segments: false,
            max_depth: 0,
            unlabelled: RowPolicy::Fail,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowPolicy {
    Fail,
    Skip,
}

impl CleaningRules {
    pub fn validate(&self) -> Result<(), String> {
        if self.path_separator.trim().is_empty() {
            return Err("`cleaning.path_separator` must hold a visible character, e.g. \" > \"".into());
        }
        Ok(())
    }

    /// Normalises free text (title, description, brand) by the descriptor's rules.
    pub fn clean_text(&self, text: &str) -> String {
        if self.normalise_whitespace { normalise_whitespace(text) } else { text.to_string() }
    }

    /// Splits and cleans a raw category path. Returns the kept segments and which rules changed it.
    pub fn clean_path(&self, raw: &str, title: &str) -> (Vec<String>, PathChanges) {
        let mut changes = PathChanges::default();
        let unescaped;
        let raw = if self.unescape_quotes && raw.contains("\\\"") {
            unescaped = raw.replace("\\\"", "\"");
            unescaped.as_str()
        } else {
            raw
        };
        let mut segments: Vec<String> = raw
            .split(self.path_separator.as_str())
            .map(|s| self.clean_text(s))
            .filter(|s| !s.is_empty())
            .collect();
        loop {
            let Some(last) = segments.last() else { break };
            if self.drop_product_name_segments && is_product_name(last, title) {
                changes.product_name = true;
            } else if self.drop_brand_line_segments
                && segments.len() >= 2
                && is_brand_line(last, &segments[segments.len() - 2])
            {
                changes.brand_line = true;
            } else {
                break;
            }
            segments.pop();
        }
        if self.max_depth > 0 && segments.len() > self.max_depth {
            segments.truncate(self.max_depth);
            changes.max_depth = true;
        }
        (segments, changes)
    }
}

/// Which cleaning rules changed one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathChanges {
    pub product_name: bool,
    pub brand_line: bool,
    pub max_depth: bool,
}

impl PathChanges {
    pub fn any(&self) -> bool {
        self.product_name || self.brand_line || self.max_depth
    }
}

/// Trims and collapses every run of Unicode white space (U+00A0 included) to one ASCII space.
pub fn normalise_whitespace(text: &str) -> String {
    if is_normalised(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// True when the text has no leading, trailing, repeated or non-space white space.
fn is_normalised(text: &str) -> bool {
    let mut previous_space = true;
    for c in text.chars() {
        if c.is_whitespace() {
            if c != ' ' || previous_space {
                return false;
            }
            previous_space = true;
        } else {
            previous_space = false;
        }
    }
    !previous_space || text.is_empty()
}

fn comparable(text: &str) -> String {
    normalise_whitespace(text).to_lowercase()
}

fn is_product_name(segment: &str, title: &str) -> bool {
    let truncated = segment.ends_with("...");
    if truncated {
        return true;
    }
    let title = comparable(title);
    if title.is_empty() {
        return false;
    }
    let segment = comparable(segment);
    title.starts_with(&segment) || segment.starts_with(&title)
}

fn is_brand_line(segment: &str, parent: &str) -> bool {
    let segment = comparable(segment);
    let parent = comparable(parent);
    segment.len() > parent.len() + 1 && segment.ends_with(&parent) && {
        let head = &segment[..segment.len() - parent.len()];
        head.ends_with(' ')
    }
}

/// A parsed price: the lower bound, and the upper bound of a range such as `£6.99 - £10.49`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Price {
    pub value: Option<f64>,
    pub max: Option<f64>,
}

/// Parses `999`, `£3.42`, `Rs. 1,299`, `12,99 €`, `USD 1.234,50`, `£12.60 - £16,268.00` or an
/// empty field ([`parse_amount`] says how each number is read). Anything else is an error naming
/// the text.
pub fn parse_price(raw: &str) -> Result<Price, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(Price::default());
    }
    let mut bounds = text.splitn(2, " - ");
    let low = parse_amount(bounds.next().unwrap_or_default()).ok_or_else(|| unparsable(raw))?;
    let high = match bounds.next() {
        Some(part) => Some(parse_amount(part).ok_or_else(|| unparsable(raw))?),
        None => None,
    };
    if let Some(high) = high
        && high < low
    {
        return Err(format!("price range `{raw}` has its upper bound below its lower bound"));
    }
    Ok(Price { value: Some(low), max: high })
}

fn unparsable(raw: &str) -> String {
    format!("unparsable price `{raw}` (expected a number, optionally with a currency sign or code before or after it, or a range `a - b`)")
}

/// Currency signs a price may carry before or after its number (codes and abbreviations such as
/// `USD`, `Rs.` or `kr` are letters, which are stripped too).
const CURRENCY_SIGNS: &[char] = &['£', '$', '€', '₹', '¥', '₩', '₽', '₺', '₪', '₫', '฿', '₱', '¢', '₦', '₴', '₡', '₵', '₸'];

/// `text` without the currency sign or code around its number: letters, currency signs, white
/// space, and the dot that ends an abbreviation (`Rs.`), so that `.99` keeps its dot.
fn strip_currency(text: &str) -> &str {
    let mark = |c: char| c.is_alphabetic() || CURRENCY_SIGNS.contains(&c) || c.is_whitespace();
    let mut start = 0;
    let mut after_letter = false;
    for (i, c) in text.char_indices() {
        if !(mark(c) || (c == '.' && after_letter)) {
            break;
        }
        start = i + c.len_utf8();
        after_letter = c.is_alphabetic();
    }
    text[start..].trim_end_matches(|c: char| mark(c) || c == '.')
}

/// One amount: the currency sign or code stripped ([`strip_currency`]), digit-group spaces and
/// apostrophes (`1 299`, `1'299`) dropped, then the separators read as catalogues write them:
/// with both `,` and `.`, the later one is the decimal point (`1,234.50`, `1.234,50`); a lone
/// comma followed by other than three digits is a decimal comma (`12,99`; `1,299` is a
/// thousand); several dots are thousands (`1.234.567`). Thousands separators must group by
/// three digits; a negative amount is not a price.
fn parse_amount(text: &str) -> Option<f64> {
    let text: String = strip_currency(text.trim()).chars().filter(|&c| !(c.is_whitespace() || c == '\'' || c == '\u{2019}')).collect();
    if text.is_empty() || !text.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if !text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return None;
    }
    let count = |sep: char| text.matches(sep).count();
    let (decimal, thousands) = match (text.rfind(','), text.rfind('.')) {
        (Some(comma), Some(dot)) if comma > dot => (Some(','), Some('.')),
        (Some(_), Some(_)) => (Some('.'), Some(',')),
        (Some(comma), None) if count(',') == 1 && text.len() - comma - 1 != 3 => (Some(','), None),
        (Some(_), None) => (None, Some(',')),
        (None, Some(_)) if count('.') > 1 => (None, Some('.')),
        (None, Some(_)) => (Some('.'), None),
        (None, None) => (None, None),
    };
    let (whole, fraction) = match decimal {
        Some(sep) if count(sep) > 1 => return None,
        Some(sep) => text.split_once(sep)?,
        None => (text.as_str(), ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: String = match thousands {
        Some(sep) => {
            let groups: Vec<&str> = whole.split(sep).collect();
            if !((1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3)) {
                return None;
            }
            groups.concat()
        }
        None => whole.to_string(),
    };
    let value: f64 = format!("{}.{}", if digits.is_empty() { "0" } else { &digits }, if fraction.is_empty() { "0" } else { fraction }).parse().ok()?;
    value.is_finite().then_some(value)
}

/// Renders a price for the model input: whole numbers without decimals, others with two.
pub fn format_price(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flipkart() -> CleaningRules {
        CleaningRules {
            path_separator: " >> ".into(),
            drop_product_name_segments: true,
            drop_brand_line_segments: true,
            ..CleaningRules::default()
        }
    }

    #[test]
    fn whitespace_is_trimmed_and_collapsed_including_nbsp() {
        assert_eq!(normalise_whitespace("  a \u{a0} b\t\nc  "), "a b c");
        assert_eq!(normalise_whitespace(""), "");
        assert_eq!(normalise_whitespace("a b"), "a b");
        assert_eq!(normalise_whitespace(" a"), "a");
        assert_eq!(normalise_whitespace("a "), "a");
        assert_eq!(normalise_whitespace("a\u{a0}b"), "a b");
        assert_eq!(normalise_whitespace(" "), "");
    }

    #[test]
    fn segments_are_trimmed_and_empty_ones_dropped() {
        let rules = CleaningRules::default();
        let (path, changes) = rules.clean_path(" Hobbies  >  Model  Trains > ", "t");
        assert_eq!(path, vec!["Hobbies", "Model Trains"]);
        assert!(!changes.any());
    }

    #[test]
    fn json_escaped_quotes_are_unescaped() {
        let (path, _) = CleaningRules::default().clean_path(r#"Tools > 12\" Saws"#, "x");
        assert_eq!(path, vec!["Tools", "12\" Saws"]);
    }

    #[test]
    fn flipkart_product_name_and_brand_line_are_cut() {
        let raw = "Clothing >> Women's Clothing >> Lingerie, Sleep & Swimwear >> Shorts >> Alisha Shorts >> Alisha Solid Women's Cycling Shorts";
        let (path, changes) = flipkart().clean_path(raw, "Alisha Solid Women's Cycling Shorts");
        assert_eq!(path, vec!["Clothing", "Women's Clothing", "Lingerie, Sleep & Swimwear", "Shorts"]);
        assert!(changes.product_name && changes.brand_line);
    }

    #[test]
    fn truncated_and_longer_product_names_are_cut() {
        let raw = "Furniture >> Living Room Furniture >> Sofa Beds & Futons >> FabHomeDecor Fabric Double Sofa Bed (Finish Colo...";
        let (path, _) = flipkart().clean_path(raw, "FabHomeDecor Fabric Double Sofa Bed");
        assert_eq!(path, vec!["Furniture", "Living Room Furniture", "Sofa Beds & Futons"]);
        let raw = "Home Decor >> Paintings >> GAGA Paintings >> GAGA Canvas Painting (18 inch x 24 inch)";
        let (path, _) = flipkart().clean_path(raw, "GAGA Canvas Painting");
        assert_eq!(path, vec!["Home Decor", "Paintings"]);
    }

    #[test]
    fn real_categories_survive() {
        let raw = "Footwear >> Women's Footwear >> Heels";
        let (path, changes) = flipkart().clean_path(raw, "Gnist Women Heels");
        assert_eq!(path.len(), 3);
        assert!(!changes.any());
        // A segment that merely differs from its parent is not a brand line.
        let raw = "Tools >> Plant Containers & Sets >> Plant Container Sets";
        assert_eq!(flipkart().clean_path(raw, "VGreen Plant Container Set").0.len(), 3);
    }

    #[test]
    fn a_path_that_is_only_the_product_name_becomes_empty() {
        let (path, changes) = flipkart().clean_path("Dressberry Gold Synthetic  Clutch", "Dressberry Gold Synthetic Clutch");
        assert!(path.is_empty());
        assert!(changes.product_name);
    }

    #[test]
    fn rules_are_off_unless_switched_on() {
        let rules = CleaningRules { path_separator: " >> ".into(), ..CleaningRules::default() };
        let (path, _) = rules.clean_path("A >> B >> Title Here", "Title Here");
        assert_eq!(path.len(), 3);
    }

    #[test]
    fn max_depth_truncates() {
        let rules = CleaningRules { max_depth: 2, ..CleaningRules::default() };
        let (path, changes) = rules.clean_path("a > b > c > d", "t");
        assert_eq!(path, vec!["a", "b"]);
        assert!(changes.max_depth);
    }

    #[test]
    fn prices_parse() {
        assert_eq!(parse_price("£3.42").unwrap(), Price { value: Some(3.42), max: None });
        assert_eq!(parse_price("999").unwrap().value, Some(999.0));
        assert_eq!(parse_price(" ").unwrap(), Price::default());
        assert_eq!(parse_price("£1.99 - £4.50").unwrap(), Price { value: Some(1.99), max: Some(4.5) });
        assert_eq!(parse_price("£12.60 - £16,268.00").unwrap().max, Some(16268.0));
        assert_eq!(parse_price("Rs. 1,299").unwrap().value, Some(1299.0));
    }

    /// Other catalogues' ways of writing a price: the sign or code after the number, a decimal
    /// comma, dots, spaces or apostrophes between thousands.
    #[test]
    fn prices_in_other_conventions_parse() {
        let value = |raw: &str| parse_price(raw).unwrap().value.unwrap();
        for (raw, expected) in [
            ("12,99 €", 12.99),
            ("€12,99", 12.99),
            ("19.99 USD", 19.99),
            ("USD 5.00", 5.0),
            ("US$ 7", 7.0),
            ("1.234,50", 1234.5),
            ("1,234.50", 1234.5),
            ("1.234.567", 1234567.0),
            ("1 299,00 zł", 1299.0),
            ("CHF 1'299.90", 1299.9),
            ("¥1,200", 1200.0),
            ("12,5", 12.5),
            ("3 kr.", 3.0),
            (".99", 0.99),
        ] {
            assert!((value(raw) - expected).abs() < 1e-9, "{raw}: {}", value(raw));
        }
        assert_eq!(parse_price("12,99 € - 15,49 €").unwrap(), Price { value: Some(12.99), max: Some(15.49) });
    }

    #[test]
    fn bad_prices_are_errors_naming_the_text() {
        for bad in ["abc", "£", "£3.42 - ", "£-3", "1.2.3", "£5 - £2", "1,2,3", "1.234,5,6", "N/A", "12:99", "."] {
            let err = parse_price(bad).unwrap_err();
            assert!(err.contains(bad.trim()) || err.contains("upper bound"), "{bad}: {err}");
        }
    }

    #[test]
    fn prices_render_compactly() {
        assert_eq!(format_price(999.0), "999");
        assert_eq!(format_price(3.42), "3.42");
        assert_eq!(format_price(3.4), "3.40");
    }
}
