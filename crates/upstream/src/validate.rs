//! Checks of one upstream item against what the database (or the
//! normaliser's serde_json) would refuse, done before the write so that one
//! bad listing is rejected on its own instead of failing its page:
//!
//! - a `\u0000` escape anywhere in the JSON (jsonb cannot hold it);
//! - nesting deeper, or a number larger, than serde_json reads;
//! - an `inner_id` longer than `raw_data.inner_id` or holding a control
//!   character;
//! - a timestamp outside Postgres' range.
//!
//! The text scan is one pass over the bytes; only an item that looks deep or
//! holds an exponent or a very long number is parsed to be judged.

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

/// `raw_data.inner_id` is `varchar(64)`.
pub const MAX_INNER_ID_CHARS: usize = 64;
/// Below serde_json's recursion limit (128): deeper items are parsed to judge.
const SUSPICIOUS_DEPTH: usize = 100;
/// Longer number tokens are parsed to judge (f64 ends near 1.8e308).
const SUSPICIOUS_NUMBER_LEN: usize = 300;

/// Checks an item's JSON text (already known to be well-formed JSON).
pub fn json_text(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut suspicious = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        if bytes.get(i + 1) == Some(&b'u')
                            && bytes.get(i + 2..i + 6) == Some(b"0000".as_slice())
                        {
                            return Err(
                                "holds a \\u0000 escape, which Postgres cannot store".into()
                            );
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                suspicious |= depth > SUSPICIOUS_DEPTH;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < bytes.len()
                    && matches!(bytes[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let token = &bytes[start..=i];
                suspicious |= token.len() > SUSPICIOUS_NUMBER_LEN
                    || token.iter().any(|b| matches!(b, b'e' | b'E'));
            }
            _ => {}
        }
        i += 1;
    }
    if suspicious {
        serde_json::from_str::<Value>(text)
            .map_err(|err| format!("serde_json cannot read it ({err})"))?;
    }
    Ok(())
}

/// Checks a listing id against what `raw_data.inner_id` holds.
pub fn inner_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars > MAX_INNER_ID_CHARS {
        return Err(format!(
            "inner_id is {chars} characters long, more than the {MAX_INNER_ID_CHARS} stored"
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("inner_id holds a control character".into());
    }
    Ok(())
}

/// Checks a timestamp against Postgres' `timestamptz` range (4713 BC to
/// 294276 AD).
pub fn timestamp(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if (-4712..=294_275).contains(&at.year()) {
        Ok(at)
    } else {
        Err(format!("created_at {at} is outside Postgres' range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_listings_pass_and_escaped_backslashes_are_not_nul_escapes() {
        assert!(json_text(r#"{"a": "x\\u0000", "b": [1, -2.5, 3], "c": {"d": null}}"#).is_ok());
        assert!(json_text(r#"{"price": 1.5e3}"#).is_ok());
    }

    #[test]
    fn a_nul_escape_a_huge_number_and_deep_nesting_are_refused() {
        assert!(json_text(r#"{"a": "x\u0000y"}"#)
            .unwrap_err()
            .contains("\\u0000"));
        assert!(json_text(r#"{"a": 1e400}"#)
            .unwrap_err()
            .contains("out of range"));
        let digits = format!(r#"{{"a": {}}}"#, "9".repeat(400));
        assert!(json_text(&digits).unwrap_err().contains("out of range"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(json_text(&deep).unwrap_err().contains("recursion limit"));
    }

    #[test]
    fn long_or_control_character_ids_are_refused() {
        assert!(inner_id("56234871").is_ok());
        assert!(inner_id(&"7".repeat(65)).is_err());
        assert!(inner_id("12\n[ERROR] forged").is_err());
    }
}
