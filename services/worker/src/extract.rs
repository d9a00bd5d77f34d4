//! Extraction profiles (`worker.extract.<profile>`, issue 15): a page's HTML
//! into a record, with CSS selectors through the `scraper` crate (html5ever
//! parses like a browser does), never regular expressions.
//!
//! A field is written `SELECTOR[@ATTR][[]][ | TYPE]`:
//! `.price | number` takes the first match's text as a number,
//! `a.dealer@href | url` its `href` resolved against the page's URL,
//! `.photos img@src[] | url` every match as a list. TYPE is `text` (the
//! default), `number` or `url`. A field whose selector matches nothing is
//! named in `missing` (`null`, or `[]` for a list), and so is a `number` or
//! `url` whose text holds none.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use scraper::{Html, Selector};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Number,
    Url,
}

/// One compiled field of a profile.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    selector: Selector,
    attr: Option<String>,
    list: bool,
    kind: FieldType,
}

/// The parts of a field spec before its selector is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub selector: String,
    pub attr: Option<String>,
    pub list: bool,
    pub kind: FieldType,
}

/// Splits `SELECTOR[@ATTR][[]][ | TYPE]`. A `|` is taken as the type
/// separator only when a known type follows it (CSS uses `|` in `[a|=b]`).
pub fn parse_spec(spec: &str) -> anyhow::Result<FieldSpec> {
    let mut rest = spec.trim();
    let mut kind = FieldType::Text;
    if let Some((head, tail)) = rest.rsplit_once('|') {
        let known = match tail.trim() {
            "text" => Some(FieldType::Text),
            "number" => Some(FieldType::Number),
            "url" => Some(FieldType::Url),
            _ => None,
        };
        if let Some(k) = known {
            kind = k;
            rest = head.trim();
        }
    }
    let list = rest.ends_with("[]");
    if list {
        rest = rest[..rest.len() - 2].trim_end();
    }
    let mut attr = None;
    if let Some((head, tail)) = rest.rsplit_once('@') {
        let is_name = !tail.is_empty()
            && tail
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'));
        if !is_name {
            bail!("{tail:?} is not an attribute name (SELECTOR@ATTR)");
        }
        attr = Some(tail.to_owned());
        rest = head.trim_end();
    }
    if rest.is_empty() {
        bail!("no CSS selector in {spec:?}");
    }
    Ok(FieldSpec {
        selector: rest.to_owned(),
        attr,
        list,
        kind,
    })
}

/// A named set of fields.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub fields: Vec<Field>,
}

impl Profile {
    pub fn compile(name: &str, fields: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        if fields.is_empty() {
            bail!("worker.extract.{name} has no fields");
        }
        let mut compiled = Vec::new();
        for (field, spec) in fields {
            let key = format!("worker.extract.{name}.{field}");
            let parsed = parse_spec(spec).with_context(|| key.clone())?;
            let selector = Selector::parse(&parsed.selector).map_err(|e| {
                anyhow::anyhow!("{key}: bad CSS selector {:?}: {e}", parsed.selector)
            })?;
            compiled.push(Field {
                name: field.clone(),
                selector,
                attr: parsed.attr,
                list: parsed.list,
                kind: parsed.kind,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            fields: compiled,
        })
    }

    /// Extracts every field from `html`; `base` resolves `url` fields.
    pub fn extract(&self, html: &str, base: Option<&url::Url>) -> Extracted {
        let document = Html::parse_document(html);
        let mut data = Map::new();
        let mut missing = Vec::new();
        for field in &self.fields {
            let values: Vec<Value> = document
                .select(&field.selector)
                .filter_map(|element| {
                    let raw = match &field.attr {
                        Some(attr) => element.value().attr(attr)?.to_owned(),
                        None => element.text().collect::<String>(),
                    };
                    convert(&raw, field.kind, base)
                })
                .collect();
            let value = if field.list {
                Value::Array(values)
            } else {
                values.into_iter().next().unwrap_or(Value::Null)
            };
            if matches!(&value, Value::Null) || matches!(&value, Value::Array(a) if a.is_empty()) {
                missing.push(field.name.clone());
            }
            data.insert(field.name.clone(), value);
        }
        Extracted {
            profile: self.name.clone(),
            data,
            missing,
        }
    }
}

/// What a profile found on one page.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub profile: String,
    pub data: Map<String, Value>,
    /// Fields whose selector matched nothing (or nothing usable).
    pub missing: Vec<String>,
}

/// One matched value as its type; `None` when it holds no such value.
fn convert(raw: &str, kind: FieldType, base: Option<&url::Url>) -> Option<Value> {
    let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    match kind {
        FieldType::Text => (!text.is_empty()).then_some(Value::String(text)),
        FieldType::Number => parse_number(&text).map(Value::from),
        FieldType::Url => {
            if text.is_empty() {
                return None;
            }
            let url = match base {
                Some(base) => base.join(&text).ok()?,
                None => url::Url::parse(&text).ok()?,
            };
            Some(Value::String(url.into()))
        }
    }
}

/// `¥ 125,800` -> 125800, `-3.5 km` -> -3.5: the first number in the text,
/// thousands separators (`,`, spaces inside digits) dropped.
fn parse_number(text: &str) -> Option<serde_json::Number> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let negative = text[..start].trim_end().ends_with('-');
    let mut digits = String::new();
    let mut seen_point = false;
    let mut chars = text[start..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' => digits.push(c),
            '.' if !seen_point && chars.peek().is_some_and(char::is_ascii_digit) => {
                seen_point = true;
                digits.push('.');
            }
            ',' | ' ' | '\u{a0}' if chars.peek().is_some_and(char::is_ascii_digit) => {}
            _ => break,
        }
    }
    if !seen_point {
        let n: i64 = digits.parse().ok()?;
        return Some(if negative { -n } else { n }.into());
    }
    let n: f64 = digits.parse().ok()?;
    serde_json::Number::from_f64(if negative { -n } else { n })
}

/// Every profile of `worker.extract`, compiled once at start.
#[derive(Debug, Clone, Default)]
pub struct Profiles(BTreeMap<String, Profile>);

impl Profiles {
    pub fn compile(config: &settings::ExtractProfiles) -> anyhow::Result<Self> {
        let mut profiles = BTreeMap::new();
        for (name, fields) in config {
            profiles.insert(name.clone(), Profile::compile(name, fields)?);
        }
        Ok(Self(profiles))
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(fields: &[(&str, &str)]) -> Profile {
        let map = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Profile::compile("p", &map).unwrap()
    }

    #[test]
    fn a_spec_splits_into_selector_attribute_list_marker_and_type() {
        assert_eq!(
            parse_spec(".photos img@src[] | url").unwrap(),
            FieldSpec {
                selector: ".photos img".into(),
                attr: Some("src".into()),
                list: true,
                kind: FieldType::Url
            }
        );
        assert_eq!(
            parse_spec("h1.title").unwrap(),
            FieldSpec {
                selector: "h1.title".into(),
                attr: None,
                list: false,
                kind: FieldType::Text
            }
        );
        // `|=` is CSS, not a type separator.
        assert_eq!(
            parse_spec("[lang|=\"en\"]").unwrap().selector,
            "[lang|=\"en\"]"
        );
        assert!(parse_spec(" | number").is_err());
        assert!(parse_spec("a@").is_err());
        let bad = BTreeMap::from([("f".to_owned(), "a[[".to_owned())]);
        let err = Profile::compile("p", &bad).unwrap_err().to_string();
        assert!(err.contains("worker.extract.p.f"), "{err}");
    }

    #[test]
    fn fields_are_extracted_typed_and_the_empty_ones_named() {
        let html = r#"<html><body><article class="listing">
            <h1 class="title">  BMW   320i
              2019 </h1>
            <span class="price">¥ 125,800</span>
            <span class="mileage">-3.5 km</span>
            <a class="dealer" href="/dealer/7">Dealer</a>
            <ul class="photos"><li><img src="/img/1.jpg"></li><li><img src="https://cdn.test/2.jpg"></li></ul>
        </article></body></html>"#;
        let p = profile(&[
            ("title", ".listing .title"),
            ("price", ".price | number"),
            ("mileage", ".mileage | number"),
            ("dealer", "a.dealer@href | url"),
            ("photos", ".photos img@src[] | url"),
            ("vin", ".vin"),
            ("tags", ".tag[]"),
            ("bad_number", ".title | number"),
        ]);
        let base = url::Url::parse("http://site.test/car/1").unwrap();
        let got = p.extract(html, Some(&base));
        assert_eq!(got.data["title"], "BMW 320i 2019");
        assert_eq!(got.data["price"], 125_800);
        assert_eq!(got.data["mileage"], -3.5);
        assert_eq!(got.data["dealer"], "http://site.test/dealer/7");
        assert_eq!(
            got.data["photos"],
            serde_json::json!(["http://site.test/img/1.jpg", "https://cdn.test/2.jpg"])
        );
        assert_eq!(got.data["vin"], Value::Null);
        assert_eq!(got.data["tags"], serde_json::json!([]));
        // "BMW 320i 2019": the first number in it is 320.
        assert_eq!(got.data["bad_number"], 320);
        assert_eq!(got.missing, vec!["tags", "vin"]);
    }

    #[test]
    fn a_page_without_the_listing_names_every_field() {
        let p = profile(&[("title", ".title"), ("price", ".price | number")]);
        let got = p.extract("<main id=app>Loading…</main>", None);
        assert_eq!(got.missing, vec!["price", "title"]);
    }

    #[test]
    fn numbers_take_the_first_number_and_drop_thousands_separators() {
        for (text, want) in [
            ("¥ 125,800", serde_json::json!(125_800)),
            ("12 500 km", serde_json::json!(12_500)),
            ("3.25万", serde_json::json!(3.25)),
            ("price: -7", serde_json::json!(-7)),
            ("1. Foo", serde_json::json!(1)),
        ] {
            assert_eq!(Value::from(parse_number(text).unwrap()), want, "{text}");
        }
        assert!(parse_number("none").is_none());
    }
}
