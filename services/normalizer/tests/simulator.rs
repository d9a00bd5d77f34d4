//! The simulator's catalogue (the benchmark's data, shaped like upstream
//! with its variants: numbers as strings, placeholders, EVs, images as
//! strings) normalises without a single error.

mod common;

use che168_sim::SimConfig;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[test]
fn every_listing_of_the_simulators_catalogue_normalises() {
    let catalogue = SimConfig::default().catalogue();
    let mut failures = Vec::new();
    for index in 0..20_000u64 {
        let data = catalogue.listing(index);
        let inner_id = catalogue.inner_id(index);
        if let Err(err) = domain::normalize::normalize(&inner_id, &data) {
            failures.push(format!("{inner_id}: {err}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_simulators_listings_go_through_the_database_unchanged(pool: PgPool) {
    let catalogue = SimConfig::default().catalogue();
    let rows: Vec<common::Raw> = (0..1_000u64)
        .map(|i| common::Raw::active(&catalogue.inner_id(i), catalogue.listing(i)))
        .collect();
    common::insert(&pool, &rows).await;
    let summary = normalizer::run_once(&pool, &common::options(200), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((summary.created, summary.errors), (1_000, 0));
    // The record column is exactly what the domain rules produce.
    let (inner_id, record): (String, serde_json::Value) =
        sqlx::query_as("SELECT inner_id, record FROM processed_data ORDER BY inner_id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let index = catalogue.index_of(&inner_id).unwrap();
    let expected = domain::normalize::normalize(&inner_id, &catalogue.listing(index)).unwrap();
    assert_eq!(record, serde_json::to_value(expected).unwrap());
}
