//! Listing-sized JSON documents for bulk figures, derived from the sample
//! offer in fixtures/upstream (about 4 KB each once compact), varied so that
//! rows differ as real ones do.

use serde_json::Value;

const SAMPLE: &str = include_str!("../../fixtures/upstream/offer.json");

/// `count` distinct listings as (inner_id, compact JSON text).
pub fn generate(count: usize) -> Vec<(String, String)> {
    let template: Value = serde_json::from_str(SAMPLE).expect("fixture offer.json parses");
    (0..count)
        .map(|i| {
            let inner_id = (50_000_000 + i).to_string();
            let mut doc = template.clone();
            doc["inner_id"] = Value::from(inner_id.clone());
            doc["id"] = Value::from(2_000_000 + i);
            doc["price"] = Value::from((50_000 + (i * 7919) % 400_000).to_string());
            doc["km_age"] = Value::from(((i * 104_729) % 300_000).to_string());
            doc["vin"] = Value::from(format!("LSVCC6A46MN{:06}", i % 1_000_000));
            (inner_id, doc.to_string())
        })
        .collect()
}
