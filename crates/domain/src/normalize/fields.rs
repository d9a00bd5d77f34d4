//! Typing rules for single upstream values: numbers that may arrive as
//! strings, placeholders that mean "missing", booleans written as words,
//! dates, the address and the image list.
//!
//! Every rule takes any JSON value and returns `Ok(None)` for missing or a
//! placeholder, `Ok(Some(v))` for a value, or an error naming what it got;
//! none of them panics.

use chrono::NaiveDate;
use serde_json::Value;

use super::FieldError;

/// Strings that mean "no value" on che168 and its aggregator.
const PLACEHOLDERS: &[&str] = &[
    "", "-", "--", "—", "——", "/", "null", "none", "n/a", "na", "暂无", "未知", "无",
];

/// Whether a trimmed string is a placeholder for a missing value.
pub fn is_placeholder(s: &str) -> bool {
    let s = s.trim();
    PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(s))
}

/// A short description of a JSON value for error messages (never the whole value).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                format!("{short:?}...")
            } else {
                format!("{short:?}")
            }
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Text: a string (trimmed; placeholders become None), or a number or a
/// boolean written out. Arrays and objects are errors; so is a NUL character,
/// which Postgres text cannot hold.
pub fn text(value: Option<&Value>) -> Result<Option<String>, FieldError> {
    let s = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => {
            return Err(FieldError::new(format!(
                "expected text, got {}",
                describe(other)
            )))
        }
    };
    if s.contains('\0') {
        return Err(FieldError::new("text contains a NUL character"));
    }
    Ok((!is_placeholder(&s)).then_some(s))
}

/// A finite number from a JSON number or a numeric string (`"139800"`,
/// `" 2.0 "`, `"1,984"`). Placeholders become None.
pub fn number(value: Option<&Value>) -> Result<Option<f64>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| FieldError::new(format!("number {n} is out of range"))),
        Some(Value::String(s)) if is_placeholder(s) => Ok(None),
        Some(Value::String(s)) => {
            let cleaned: String = s.trim().chars().filter(|c| *c != ',').collect();
            match cleaned.parse::<f64>() {
                Ok(f) if f.is_finite() && !cleaned.contains(['e', 'E', 'i', 'I', 'n', 'N']) => {
                    Ok(Some(f))
                }
                _ => Err(FieldError::new(format!(
                    "expected a number, got {}",
                    describe(value.unwrap_or(&Value::Null))
                ))),
            }
        }
        Some(other) => Err(FieldError::new(format!(
            "expected a number, got {}",
            describe(other)
        ))),
    }
}

/// A whole number within `min..=max` (a float must have no fraction).
pub fn integer(value: Option<&Value>, min: i64, max: i64) -> Result<Option<i64>, FieldError> {
    let Some(f) = number(value)? else {
        return Ok(None);
    };
    if f.fract() != 0.0 {
        return Err(FieldError::new(format!("expected a whole number, got {f}")));
    }
    if f < min as f64 || f > max as f64 {
        return Err(FieldError::new(format!("{f} is outside {min}..={max}")));
    }
    // In range and integral, so the cast is exact.
    Ok(Some(f as i64))
}

/// An i32 column within `min..=max`.
pub fn int32(value: Option<&Value>, min: i32, max: i32) -> Result<Option<i32>, FieldError> {
    Ok(integer(value, i64::from(min), i64::from(max))?.and_then(|v| i32::try_from(v).ok()))
}

/// A non-negative float below `max`.
pub fn float(value: Option<&Value>, max: f64) -> Result<Option<f64>, FieldError> {
    let Some(f) = number(value)? else {
        return Ok(None);
    };
    if !(0.0..=max).contains(&f) {
        return Err(FieldError::new(format!("{f} is outside 0..={max}")));
    }
    Ok(Some(f))
}

/// Booleans: JSON booleans, 0/1, and the words true/false, yes/no, 是/否.
pub fn boolean(value: Option<&Value>) -> Result<Option<bool>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Some(false)),
        Some(Value::String(s)) if is_placeholder(s) => Ok(None),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "t" | "是" => Ok(Some(true)),
            "false" | "0" | "no" | "n" | "f" | "否" => Ok(Some(false)),
            _ => Err(FieldError::new(format!(
                "expected a boolean, got {}",
                describe(value.unwrap_or(&Value::Null))
            ))),
        },
        Some(other) => Err(FieldError::new(format!(
            "expected a boolean, got {}",
            describe(other)
        ))),
    }
}

/// Years we accept in dates and in `year`.
pub const MIN_YEAR: i32 = 1885;
pub const MAX_YEAR: i32 = 2100;

fn plausible(date: NaiveDate) -> Result<NaiveDate, FieldError> {
    use chrono::Datelike;
    if (MIN_YEAR..=MAX_YEAR).contains(&date.year()) {
        Ok(date)
    } else {
        Err(FieldError::new(format!(
            "date {date} is outside {MIN_YEAR}..={MAX_YEAR}"
        )))
    }
}

/// A calendar date: `YYYY-MM-DD`, optionally followed by a time
/// (`2026-08-18 10:00:00`, `2026-08-18T10:00:00Z`), which is dropped.
pub fn date(value: Option<&Value>) -> Result<Option<NaiveDate>, FieldError> {
    let Some(s) = text(value)? else {
        return Ok(None);
    };
    let day = s.get(..10).unwrap_or(&s);
    let rest = s.get(10..).unwrap_or("");
    let time_follows = rest.is_empty() || rest.starts_with([' ', 'T']);
    match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(d) if time_follows => plausible(d).map(Some),
        _ => Err(FieldError::new(format!("expected YYYY-MM-DD, got {s:?}"))),
    }
}

/// `first_registration`: the date (first of the month for `YYYY-MM`) and
/// whether the car is registered. `未上牌` means "not registered": no date,
/// registered = false. Placeholders give neither.
pub fn registration(
    value: Option<&Value>,
) -> Result<(Option<NaiveDate>, Option<bool>), FieldError> {
    let Some(s) = text(value)? else {
        return Ok((None, None));
    };
    if s == "未上牌" {
        return Ok((None, Some(false)));
    }
    let normalised = s.replace(['/', '.'], "-");
    let parsed = NaiveDate::parse_from_str(&format!("{normalised}-01"), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&normalised, "%Y-%m-%d"));
    match parsed {
        Ok(d) => Ok((Some(plausible(d)?), Some(true))),
        Err(_) => Err(FieldError::new(format!(
            "expected YYYY-MM or 未上牌, got {s:?}"
        ))),
    }
}

/// `address` `"北京, 朝阳"` split into its city and district.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Address {
    pub full: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
}

/// The whole address, the city and the district. A missing district
/// (`"北京"`, `"北京, "`) is None.
pub fn address(value: Option<&Value>) -> Result<Address, FieldError> {
    let Some(full) = text(value)? else {
        return Ok(Address::default());
    };
    let (city, district) = match full.split_once([',', '，']) {
        Some((c, d)) => (c.trim(), d.trim()),
        None => (full.as_str(), ""),
    };
    let keep = |s: &str| (!is_placeholder(s)).then(|| s.to_owned());
    Ok(Address {
        city: keep(city),
        district: keep(district),
        full: Some(full.clone()),
    })
}

/// `images`: a JSON array of URL strings, or a string holding one. Missing or
/// a placeholder string is an empty list.
pub fn images(value: Option<&Value>) -> Result<Vec<String>, FieldError> {
    let parsed;
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if is_placeholder(s) => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s.trim()).map_err(|_| {
                FieldError::new(format!(
                    "expected a JSON array of URLs, got {}",
                    describe(value.unwrap_or(&Value::Null))
                ))
            })?;
            &parsed
        }
        Some(other) => other,
    };
    let Value::Array(items) = list else {
        return Err(FieldError::new(format!(
            "expected an array of URLs, got {}",
            describe(list)
        )));
    };
    let mut urls = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if s.contains('\0') => {
                return Err(FieldError::new("an image URL contains a NUL character"))
            }
            Value::String(s) if is_placeholder(s) => {}
            Value::String(s) => urls.push(s.trim().to_owned()),
            Value::Null => {}
            other => {
                return Err(FieldError::new(format!(
                    "expected an image URL, got {}",
                    describe(other)
                )))
            }
        }
    }
    Ok(urls)
}

/// The leading number of a spec-table value with a unit or a word after it
/// (`"7挡"` -> 7, `"2.0T"` -> 2.0, `"186"` -> 186). The spec table is free
/// text: a value without a leading number (`"无级"`) is None, not an error.
pub fn leading_number(value: Option<&Value>) -> Result<Option<f64>, FieldError> {
    match value {
        Some(Value::String(s)) => {
            let s = s.trim();
            let end = s
                .char_indices()
                .find(|(i, c)| !(c.is_ascii_digit() || (*c == '.' && *i > 0)))
                .map_or(s.len(), |(i, _)| i);
            let digits = s[..end].trim_end_matches('.');
            Ok(digits.parse::<f64>().ok().filter(|f| f.is_finite()))
        }
        other => number(other),
    }
}
