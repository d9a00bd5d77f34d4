//! Typed responses, parsed defensively (CONTRACT.md): numbers or numeric
//! strings, `next_page` null or 0, the three `/offer` shapes, `removed`
//! without `data`, `inner_id` only in the envelope.

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::change::{ChangeEvent, OfferItem, RejectedItem};
use domain::listing::ChangeType;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ParseError;
use crate::validate;

/// One page of `/offers`.
#[derive(Debug, Clone)]
pub struct OffersPage {
    pub items: Vec<OfferItem>,
    pub page: Option<u32>,
    /// `None` at the end of the feed (`null` or `0` upstream).
    pub next_page: Option<u32>,
    /// Items that cannot be stored (unreadable, no usable `inner_id`, `id`
    /// or `change_type`, or a value Postgres would refuse).
    pub malformed: usize,
    /// Those items, with their reasons, for `rejected_items`.
    pub rejected: Vec<RejectedItem>,
}

/// One page of `/changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    pub items: Vec<ChangeEvent>,
    pub cur_change_id: Option<i64>,
    /// `None` at the tip of the feed: `null`, or not after `cur_change_id`.
    pub next_change_id: Option<i64>,
    pub malformed: usize,
    /// The malformed items, with their reasons, for `rejected_items`.
    pub rejected: Vec<RejectedItem>,
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ParseError::new(format!(
            "expected a JSON object, got {}",
            kind(&other)
        ))),
        Err(err) => Err(ParseError::new(format!("not JSON ({err})"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON number or a numeric string as an integer.
pub fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// ISO-8601 UTC, with or without milliseconds (and a space instead of `T`).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
}

fn result_array(map: &Map<String, Value>) -> Result<&Vec<Value>, ParseError> {
    match map.get("result") {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => Err(ParseError::new("no `result` array")),
        Some(other) => Err(ParseError::new(format!(
            "`result` is {}, not an array",
            kind(other)
        ))),
    }
}

/// Keeps what `parse` accepts, and the items it refuses with their reasons.
fn usable<'a, U>(
    values: impl IntoIterator<Item = &'a RawValue>,
    parse: impl Fn(&'a RawValue) -> Result<U, RejectedItem>,
) -> (Vec<U>, Vec<RejectedItem>) {
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for value in values {
        match parse(value) {
            Ok(parsed) => out.push(parsed),
            Err(item) => {
                // Debug formatting escapes the upstream's text in the log.
                tracing::warn!(
                    "Rejected an upstream item (inner_id {:?}): {}",
                    item.inner_id.as_deref().unwrap_or("unknown"),
                    item.reason.escape_debug()
                );
                rejected.push(item);
            }
        }
    }
    (out, rejected)
}

/// The envelope's `created_at`: unreadable is unknown, out of Postgres'
/// range is refused.
fn created_at(value: Option<&Value>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .map(validate::timestamp)
        .transpose()
}

/// One `/changes` item, checked: the text first (what Postgres or serde_json
/// would refuse), then the envelope.
fn change_item(raw: &RawValue) -> Result<ChangeEvent, RejectedItem> {
    let text = raw.get();
    let reject = |id: Option<&str>, reason: String| RejectedItem::new(id, reason, text);
    validate::json_text(text).map_err(|reason| reject(None, reason))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|err| reject(None, format!("unreadable item ({err})")))?;
    let mut event = item(&value).ok_or_else(|| {
        reject(
            value.get("inner_id").and_then(lenient_string).as_deref(),
            "no usable inner_id, id or change_type".into(),
        )
    })?;
    validate::inner_id(&event.inner_id).map_err(|r| reject(Some(&event.inner_id), r))?;
    event.created_at =
        created_at(value.get("created_at")).map_err(|r| reject(Some(&event.inner_id), r))?;
    Ok(event)
}

fn item(value: &Value) -> Option<ChangeEvent> {
    let envelope = value.as_object()?;
    let data = match envelope.get("data") {
        Some(Value::Object(map)) => Some(map.clone()),
        _ => None,
    };
    let inner_id = envelope
        .get("inner_id")
        .and_then(lenient_string)
        .or_else(|| data.as_ref()?.get("inner_id").and_then(lenient_string))?;
    let change_type = envelope
        .get("change_type")
        .and_then(Value::as_str)?
        .trim()
        .to_ascii_lowercase()
        .parse()
        .ok()?;
    let id = envelope.get("id").and_then(lenient_i64)?;
    let created_at = envelope
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(parse_timestamp);
    Some(ChangeEvent {
        id,
        inner_id,
        change_type,
        created_at,
        data,
    })
}

fn page_number(v: Option<&Value>) -> Option<u32> {
    v.and_then(lenient_i64)
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
}

/// An `/offers` body with its items left as raw JSON: each item's envelope
/// is read on its own, and its `data` is kept as the text it came as.
#[derive(Deserialize)]
struct OffersBody<'a> {
    #[serde(borrow)]
    result: Option<Vec<&'a RawValue>>,
    meta: Option<Value>,
}

/// The envelope of one `/offers` item; `data` stays raw.
#[derive(Deserialize)]
struct OfferEnvelope<'a> {
    id: Option<Value>,
    inner_id: Option<Value>,
    change_type: Option<Value>,
    created_at: Option<Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

pub fn parse_offers_page(body: &[u8]) -> Result<OffersPage, ParseError> {
    let page: OffersBody = match serde_json::from_slice(body) {
        Ok(page) => page,
        Err(_) => {
            // Say what is wrong the way every other parser here does.
            parse_object(body)?;
            return Err(ParseError::new("`result` is not an array"));
        }
    };
    let result = page
        .result
        .ok_or_else(|| ParseError::new("no `result` array"))?;
    let meta = match page.meta {
        Some(Value::Object(map)) => map,
        _ => return Err(ParseError::new("no `meta` object")),
    };
    let next_page = match meta.get("next_page") {
        None => return Err(ParseError::new("`meta` has no `next_page`")),
        Some(Value::Null) => None,
        Some(v) => match lenient_i64(v) {
            Some(0) => None,
            Some(_) => Some(
                page_number(Some(v))
                    .ok_or_else(|| ParseError::new("`next_page` is out of range"))?,
            ),
            None => return Err(ParseError::new("`next_page` is not a number")),
        },
    };
    let (items, rejected) = usable(result, offer_item);
    Ok(OffersPage {
        items,
        page: page_number(meta.get("page")),
        next_page,
        malformed: rejected.len(),
        rejected,
    })
}

/// One `/offers` item, checked (see `validate`); its `data` stays raw.
fn offer_item(raw: &RawValue) -> Result<OfferItem, RejectedItem> {
    let text = raw.get();
    let reject = |id: Option<&str>, reason: String| RejectedItem::new(id, reason, text);
    let envelope: OfferEnvelope = serde_json::from_str(text)
        .map_err(|err| reject(None, format!("unreadable item ({err})")))?;
    let data = envelope.data.filter(|d| d.get().starts_with('{'));
    let inner_id = envelope
        .inner_id
        .as_ref()
        .and_then(lenient_string)
        .or_else(|| {
            // Rare: the id only inside `data`; only then is data parsed.
            let data: Value = serde_json::from_str(data?.get()).ok()?;
            data.get("inner_id").and_then(lenient_string)
        })
        .ok_or_else(|| reject(None, "no usable inner_id".into()))?;
    let id_problem = |reason: String| reject(Some(&inner_id), reason);
    validate::inner_id(&inner_id).map_err(id_problem)?;
    validate::json_text(text).map_err(id_problem)?;
    let change_type = match envelope.change_type.as_ref().and_then(Value::as_str) {
        Some(s) => s
            .trim()
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| id_problem(format!("unknown change_type {s:?}")))?,
        None => ChangeType::Added,
    };
    Ok(OfferItem {
        id: envelope
            .id
            .as_ref()
            .and_then(lenient_i64)
            .ok_or_else(|| id_problem("no usable id".into()))?,
        created_at: created_at(envelope.created_at.as_ref()).map_err(id_problem)?,
        inner_id,
        change_type,
        data: data.map(ToOwned::to_owned),
    })
}

/// A `/changes` body with its items left raw: each is checked on its own.
#[derive(Deserialize)]
struct ChangesBody<'a> {
    #[serde(borrow)]
    result: Option<Vec<&'a RawValue>>,
    meta: Option<Value>,
}

pub fn parse_changes_page(body: &[u8]) -> Result<ChangesPage, ParseError> {
    let page: ChangesBody = match serde_json::from_slice(body) {
        Ok(page) => page,
        Err(_) => {
            let map = parse_object(body)?;
            result_array(&map)?;
            return Err(ParseError::new("`result` is not a list of items"));
        }
    };
    let result = page
        .result
        .ok_or_else(|| ParseError::new("no `result` array"))?;
    let (items, rejected) = usable(result, change_item);
    let meta = match page.meta {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let cur = meta.get("cur_change_id").and_then(lenient_i64);
    let next = meta
        .get("next_change_id")
        .and_then(lenient_i64)
        .filter(|n| *n > 0 && cur.is_none_or(|c| *n > c));
    Ok(ChangesPage {
        items,
        cur_change_id: cur,
        next_change_id: next,
        malformed: rejected.len(),
        rejected,
    })
}

pub fn parse_change_id(body: &[u8]) -> Result<i64, ParseError> {
    let map = parse_object(body)?;
    map.get("change_id")
        .and_then(lenient_i64)
        .ok_or_else(|| ParseError::new("no numeric `change_id`"))
}

/// `/offer`: the bare `data` object, `{"result": data}`, or
/// `{"result": [item], "meta": ...}`; `None` when the list is empty.
pub fn parse_offer(body: &[u8]) -> Result<Option<Map<String, Value>>, ParseError> {
    let map = parse_object(body)?;
    match map.get("result") {
        None => Ok(Some(map)),
        Some(Value::Object(data)) => Ok(Some(data.clone())),
        Some(Value::Array(list)) => Ok(list
            .first()
            .and_then(|first| first.get("data"))
            .and_then(Value::as_object)
            .cloned()),
        Some(other) => Err(ParseError::new(format!(
            "`result` is {}, not a listing",
            kind(other)
        ))),
    }
}

/// `/filters`: kept as JSON, it is vocabulary, not structure.
pub fn parse_filters(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    parse_object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../fixtures/upstream/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn offers_page_fixture_parses_with_its_next_page() {
        let page = parse_offers_page(&fixture("offers_page.json")).unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.page, Some(1));
        assert_eq!(page.next_page, Some(2));
        assert_eq!(page.malformed, 0);
        let first = &page.items[0];
        assert_eq!(first.inner_id, "56234871");
        assert_eq!(first.id, 10_511_876);
        assert_eq!(first.change_type, ChangeType::Added);
        assert_eq!(
            first.created_at.unwrap().to_rfc3339(),
            "2026-08-18T06:41:27.312+00:00"
        );
        let data: Value = serde_json::from_str(first.data_json()).unwrap();
        assert_eq!(data["inner_id"], json!("56234871"));
    }

    #[test]
    fn offers_items_are_read_leniently_and_keep_their_data_as_sent() {
        let body = r#"{"result": [
            {"id": "77", "inner_id": 123, "created_at": "2026-08-20T09:00:03Z", "data": {"price": "7500", "城市": "北京"}},
            {"id": 78, "change_type": "added", "data": {"inner_id": "124"}},
            {"id": 79, "inner_id": "125", "data": null},
            {"id": 80, "inner_id": "126", "data": "not an object"},
            {"id": 81, "change_type": "teleported", "inner_id": "127"},
            {"inner_id": "128"},
            42
        ], "meta": {"page": "3", "next_page": 4}}"#;
        let page = parse_offers_page(body.as_bytes()).unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.inner_id.as_str()).collect();
        assert_eq!(ids, ["123", "124", "125", "126"]);
        assert_eq!(page.items[0].id, 77);
        assert_eq!(page.items[0].change_type, ChangeType::Added);
        assert_eq!(
            page.items[0].data_json(),
            r#"{"price": "7500", "城市": "北京"}"#
        );
        assert_eq!(page.items[2].data_json(), "{}");
        assert_eq!(page.items[3].data_json(), "{}");
        assert_eq!(page.malformed, 3);
        assert_eq!((page.page, page.next_page), (Some(3), Some(4)));
    }

    #[test]
    fn last_offers_page_has_no_next_page() {
        let page = parse_offers_page(&fixture("offers_page_last.json")).unwrap();
        assert_eq!(page.next_page, None);
        assert_eq!(page.page, Some(2417));
    }

    #[test]
    fn next_page_zero_is_the_end_like_null() {
        let body = br#"{"result": [], "meta": {"page": 5, "next_page": 0, "limit": 20}}"#;
        assert_eq!(parse_offers_page(body).unwrap().next_page, None);
        let body = br#"{"result": [], "meta": {"page": "5", "next_page": "6"}}"#;
        assert_eq!(parse_offers_page(body).unwrap().next_page, Some(6));
    }

    #[test]
    fn changes_page_fixture_parses_removed_items_without_data() {
        let page = parse_changes_page(&fixture("changes_page.json")).unwrap();
        assert_eq!(page.items.len(), 20);
        assert_eq!(page.cur_change_id, Some(10_530_412));
        assert_eq!(page.next_change_id, Some(10_530_432));
        let removed = page
            .items
            .iter()
            .find(|i| i.change_type == ChangeType::Removed)
            .unwrap();
        assert!(removed.data.is_none());
        let changed = &page.items[1];
        assert_eq!(changed.change_type, ChangeType::Changed);
        assert!(changed.data.as_ref().unwrap().contains_key("new_price"));
    }

    #[test]
    fn the_tip_of_the_changes_feed_has_no_next_change_id() {
        let page = parse_changes_page(&fixture("changes_page_end.json")).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next_change_id, None);
        let body = br#"{"result": [], "meta": {"cur_change_id": 10, "next_change_id": 10}}"#;
        assert_eq!(parse_changes_page(body).unwrap().next_change_id, None);
    }

    #[test]
    fn numeric_strings_and_missing_inner_id_in_data_are_accepted() {
        let body = br#"{"result": [
            {"id": "77", "inner_id": 123, "change_type": "changed", "created_at": "2026-08-20T09:00:03Z", "data": {"new_price": "7500"}},
            {"id": 78, "inner_id": "124", "change_type": "removed", "created_at": "2026-08-20T09:00:04.5Z", "data": null},
            {"id": 79, "change_type": "added", "data": {"inner_id": "125"}},
            {"id": 80, "change_type": "teleported", "inner_id": "126"},
            {"id": 81}
        ], "meta": {"cur_change_id": "77", "next_change_id": "82"}}"#;
        let page = parse_changes_page(body).unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.inner_id.as_str()).collect();
        assert_eq!(ids, ["123", "124", "125"]);
        assert_eq!(page.items[0].id, 77);
        assert!(page.items[1].data.is_none());
        assert_eq!(page.malformed, 2);
        assert_eq!(page.next_change_id, Some(82));
    }

    #[test]
    fn truncated_or_html_bodies_are_parse_errors() {
        let full = fixture("offers_page.json");
        assert!(parse_offers_page(&full[..full.len() / 2]).is_err());
        assert!(parse_offers_page(b"<html><body>404 Not Found</body></html>").is_err());
        assert!(parse_offers_page(br#"{"meta": {}}"#).is_err());
        assert!(parse_change_id(br#"{"change_id": null}"#).is_err());
    }

    #[test]
    fn change_id_reads_numbers_and_strings() {
        assert_eq!(
            parse_change_id(&fixture("change_id.json")).unwrap(),
            10_530_412
        );
        assert_eq!(parse_change_id(br#"{"change_id": "42"}"#).unwrap(), 42);
    }

    #[test]
    fn offer_reads_all_three_shapes() {
        let bare = parse_offer(&fixture("offer.json")).unwrap().unwrap();
        assert_eq!(bare["inner_id"], json!("56234871"));
        let wrapped = parse_offer(&fixture("offer_wrapped.json"))
            .unwrap()
            .unwrap();
        assert_eq!(wrapped["inner_id"], json!("56234871"));
        let body = serde_json::to_vec(&json!({"result": bare})).unwrap();
        assert_eq!(
            parse_offer(&body).unwrap().unwrap()["inner_id"],
            json!("56234871")
        );
        assert_eq!(parse_offer(br#"{"result": [], "meta": {}}"#).unwrap(), None);
    }

    #[test]
    fn timestamps_with_and_without_milliseconds_parse() {
        assert!(parse_timestamp("2026-08-20T09:00:03Z").is_some());
        assert!(parse_timestamp("2026-08-20T09:00:03.111Z").is_some());
        assert!(parse_timestamp("2026-08-20 09:00:03").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn filters_fixture_parses() {
        let filters = parse_filters(&fixture("filters.json")).unwrap();
        assert!(filters.contains_key("mark"));
    }
}
