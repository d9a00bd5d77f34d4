//! operations_log: one row per run, and the newest per kind.

use chrono::{Duration, Utc};
use domain::operation::{Details, OperationStatus, OperationType};
use sqlx::PgPool;

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_run_is_recorded_with_its_duration_status_and_counts(pool: PgPool) {
    let started = Utc::now() - Duration::seconds(3);
    let details = Details::default()
        .count("pages", 2)
        .count("inserted", 40)
        .render();
    db::operations::record(
        &pool,
        OperationType::DataFetch,
        started,
        OperationStatus::Ok,
        &details,
    )
    .await
    .unwrap();
    let rows = db::operations::latest_per_type(&pool).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].operation_type, "data_fetch");
    assert_eq!(rows[0].status, "OK");
    assert_eq!(rows[0].details, "pages=2 inserted=40");
    assert!(
        rows[0].duration >= 3.0 && rows[0].duration < 60.0,
        "{}",
        rows[0].duration
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn latest_per_type_returns_the_newest_row_of_each_kind(pool: PgPool) {
    let now = Utc::now();
    for (kind, minutes_ago, status) in [
        (OperationType::DataFetch, 30, OperationStatus::Ok),
        (OperationType::DataFetch, 5, OperationStatus::Error),
        (OperationType::Normalization, 10, OperationStatus::Ok),
    ] {
        db::operations::record(
            &pool,
            kind,
            now - Duration::minutes(minutes_ago),
            status,
            "",
        )
        .await
        .unwrap();
    }
    let rows = db::operations::latest_per_type(&pool).await.unwrap();
    let summary: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.operation_type.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![("data_fetch", "ERROR"), ("normalization", "OK")]
    );
}
