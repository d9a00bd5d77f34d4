use super::*;
use domain::listing::ChangeType;
use serde_json::{json, Value};

fn offer(id: i64, inner: &str, data: Option<Value>) -> OfferItem {
    OfferItem {
        id,
        inner_id: inner.into(),
        change_type: ChangeType::Added,
        created_at: None,
        data: data.map(|d| serde_json::value::to_raw_value(&d).unwrap()),
    }
}

/// endpoint, page, inner_id, reason, raw.
type Rejected = (String, Option<i32>, Option<String>, String, String);

fn span(first: i32, count: i32, next: Option<i32>) -> PageSpan {
    PageSpan { first, count, next }
}

fn page(page: i32, items: Vec<OfferItem>) -> Vec<PageRows> {
    vec![PageRows {
        page,
        items,
        rejected: Vec::new(),
    }]
}

async fn start(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    db::load_state::start(&mut conn).await.unwrap();
}

async fn store_one(pool: &PgPool, inner_id: &str, price: i64) {
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, data, source)
         VALUES ($1, 'added', jsonb_build_object('price', $2::bigint), 'initial_load')",
    )
    .bind(inner_id)
    .bind(price)
    .execute(pool)
    .await
    .unwrap();
}

/// Pages of 20 listings `page*100 + 0..20`; `repeat` adds the previous
/// page's first listing again (pagination drift).
fn page_items(page: i32, repeat: bool) -> Vec<OfferItem> {
    let mut items: Vec<OfferItem> = (0..20)
        .map(|i| {
            let n = i64::from(page) * 100 + i;
            offer(n, &n.to_string(), Some(json!({"price": n})))
        })
        .collect();
    if repeat && page > 1 {
        let n = i64::from(page - 1) * 100;
        items.push(offer(-n, &n.to_string(), Some(json!({"price": -n}))));
    }
    items
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn pipelined_writes_commit_in_page_order_and_repeats_keep_their_first_row(pool: PgPool) {
    start(&pool).await;
    store_one(&pool, "1005", -1).await; // stored before the load: left alone
    let mut pipeline = PagePipeline::new(pool.clone(), Commit::Asynchronous, 3);
    let mut stored = Vec::new();
    for n in 1..=30 {
        let next = (n < 30).then_some(n + 1);
        stored.extend(
            pipeline
                .submit(span(n, 1, next), page(n, page_items(n, true)))
                .await
                .unwrap(),
        );
    }
    stored.extend(pipeline.finish().await.unwrap());
    let firsts: Vec<i32> = stored.iter().map(|s| s.span.first).collect();
    assert_eq!(firsts, (1..=30).collect::<Vec<_>>());
    let inserted: u64 = stored.iter().map(|s| s.inserted).sum();
    assert_eq!(inserted, 30 * 20 - 1);
    let received: u64 = stored.iter().map(|s| s.received).sum();
    assert_eq!(received, 30 * 20 + 29);
    let state = db::load_state::get(&pool).await.unwrap().unwrap();
    assert_eq!(
        (state.next_page, state.pages_stored, state.records_stored),
        (31, 30, 599)
    );
    assert!(state.finished_at.is_some());
    let (rows, first_rows_kept): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE (data->>'price')::bigint >= 0) FROM raw_data",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, first_rows_kept),
        (600, 599),
        "only 1005's own row is negative"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_value_only_postgres_refuses_costs_only_its_listing_and_is_kept_in_rejected_items(
    pool: PgPool,
) {
    start(&pool).await;
    store_one(&pool, "203", -1).await; // so the COPY fails on a conflict too
    let mut items = page_items(2, false);
    // A lone surrogate escape: serde_json passes it, jsonb refuses it.
    items[5].data =
        Some(serde_json::value::RawValue::from_string(r#"{"title": "x\ud800y"}"#.into()).unwrap());
    items[11].inner_id = "x".repeat(65); // longer than the column
    let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
    pipeline
        .submit(span(1, 1, Some(2)), page(1, page_items(1, false)))
        .await
        .unwrap();
    pipeline
        .submit(span(2, 1, None), page(2, items))
        .await
        .unwrap();
    let stored = pipeline.finish().await.unwrap();
    let last = stored.last().unwrap();
    assert_eq!((last.received, last.inserted, last.refused), (20, 17, 2));
    assert_eq!(count(&pool, "SELECT count(*) FROM raw_data").await, 20 + 18);
    let rejected: Vec<Rejected> = sqlx::query_as(
        "SELECT endpoint, page, inner_id, reason, raw FROM rejected_items ORDER BY inner_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].2.as_deref(), Some("205"));
    assert!(
        rejected[0].3.contains("invalid input syntax for type json"),
        "{rejected:?}"
    );
    assert!(
        rejected[0].4.contains(r"x\ud800y"),
        "the text is kept as sent"
    );
    assert_eq!(rejected[1].2, Some("x".repeat(65)));
    assert!(rejected[1].3.contains("too long"), "{rejected:?}");
    assert!(rejected.iter().all(|r| r.0 == "/offers" && r.1 == Some(2)));
    let state = db::load_state::get(&pool).await.unwrap().unwrap();
    assert_eq!((state.next_page, state.records_stored), (3, 37));
    assert!(state.finished_at.is_some());
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_failed_write_rolls_back_the_writes_after_it_and_the_load_resumes_there(pool: PgPool) {
    start(&pool).await;
    let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
    for n in 1..=3 {
        pipeline
            .submit(span(n, 1, Some(n + 1)), page(n, page_items(n, false)))
            .await
            .unwrap();
    }
    pipeline.finish().await.unwrap();
    // A failure that is no refused value (a trigger raising, standing for a
    // server gone wrong): page 4's write fails whole, and page 5's, in flight
    // behind it, must roll back rather than move the cursor past page 4.
    sqlx::raw_sql(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.inner_id = '403' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON raw_data FOR EACH ROW EXECUTE FUNCTION boom();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let first = pipeline
        .submit(span(4, 1, Some(5)), page(4, page_items(4, false)))
        .await
        .unwrap();
    assert_eq!(first, None);
    let second = pipeline
        .submit(span(5, 1, Some(6)), page(5, page_items(5, false)))
        .await;
    let failed = match second {
        Err(failed) => failed,
        Ok(_) => pipeline.finish().await.unwrap_err(),
    };
    assert_eq!(failed.span.first, 4);
    assert!(
        matches!(failed.reason, WriteFailure::Database(_)),
        "{failed:?}"
    );
    let state = db::load_state::get(&pool).await.unwrap().unwrap();
    assert_eq!((state.next_page, state.records_stored), (4, 60));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM raw_data").await,
        60,
        "nothing of pages 4 and 5 stayed"
    );

    // The next run resumes at page 4.
    sqlx::query("DROP TRIGGER boom ON raw_data")
        .execute(&pool)
        .await
        .unwrap();
    let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
    for n in 4..=5 {
        let next = (n < 5).then_some(n + 1);
        pipeline
            .submit(span(n, 1, next), page(n, page_items(n, false)))
            .await
            .unwrap();
    }
    pipeline.finish().await.unwrap();
    let state = db::load_state::get(&pool).await.unwrap().unwrap();
    assert_eq!((state.next_page, state.records_stored), (6, 100));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_pipeline_whose_cursor_moved_under_it_stores_nothing(pool: PgPool) {
    start(&pool).await;
    // Another run stored page 1 already.
    let mut other = PagePipeline::new(pool.clone(), Commit::Synchronous, 1);
    other
        .submit(span(1, 1, Some(2)), page(1, page_items(1, false)))
        .await
        .unwrap();
    other.finish().await.unwrap();
    let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
    pipeline
        .submit(span(1, 1, Some(2)), page(1, page_items(1, false)))
        .await
        .unwrap();
    pipeline
        .submit(span(2, 1, Some(3)), page(2, page_items(2, false)))
        .await
        .unwrap();
    let failed = pipeline.finish().await.unwrap_err();
    assert_eq!(failed.span.first, 1);
    assert!(
        matches!(failed.reason, WriteFailure::CursorMoved),
        "{failed:?}"
    );
    let state = db::load_state::get(&pool).await.unwrap().unwrap();
    assert_eq!((state.next_page, state.records_stored), (2, 20));
}
