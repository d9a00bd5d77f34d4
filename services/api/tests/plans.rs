//! Every filter and sort `GET /offers` documents is served by an index on a
//! realistically sized table (issue 14): checked with EXPLAIN on the api's
//! own statements, after ANALYZE, not by eye. The values are ones that
//! match nothing, the case that once walked a whole sort index (3.7 s at
//! 1,000,000 rows for `?model=zzz`): a filtered page walks at most 5,000
//! rows of the sort's index (in order, no sort), then takes the filter's
//! matches from the filter's index. Common values never scan the table.

use std::time::Duration;

use api::pool::ApiPool;
use api::Config;
use db::offers::{PageRequest, Planning};
use db::DbError;
use sqlx::{PgConnection, PgPool};

/// Rows in the table: enough that a sequential scan or a walk of a sort
/// index costs the planner what it costs at 1,000,000.
const ROWS: i64 = 200_000;

async fn fill(pool: &PgPool) {
    let mut from = 0;
    while from < ROWS {
        let to = (from + 50_000).min(ROWS);
        sqlx::query(include_str!("../../../bench/src/api_fill.sql"))
            .bind(from)
            .bind(to - 1)
            .execute(pool)
            .await
            .unwrap();
        from = to;
    }
    sqlx::query("ANALYZE processed_data")
        .execute(pool)
        .await
        .unwrap();
}

/// Every statement's plan of `query` (shape, plan), on the api's own kind
/// of pool.
async fn plans(api_pool: &ApiPool, query: &str) -> Vec<(String, String)> {
    let request = api::routes::offers::page_request(Some(query), &Config::for_tests().api)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    api_pool
        .run(async |conn| explain(conn, &request).await)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_documented_filter_and_sort_is_served_by_an_index(pool: PgPool) {
    fill(&pool).await;
    // With the settings of `api serve`'s connections (custom plans).
    let api_pool = api::pool::bounded(&pool, Duration::from_secs(30));
    let terms = "processed_data_filter_terms_idx";
    // (filter, the index that must serve it when it matches nothing)
    let rare = [
        ("mark=Zzz", "processed_data_mark_"),
        ("mark=Zzz,Yyy", "processed_data_mark_"),
        ("model=zzz", terms),
        ("model=zzz,yyy", terms),
        ("mark=Toyota&model=zzz", "processed_data_mark_model_idx"),
        ("city=zzz", terms),
        ("city=zzz,yyy", terms),
        ("body_type=zzz", terms),
        ("body_type=zzz,yyy", terms),
        ("engine_type=zzz", terms),
        ("engine_type=zzz,yyy", terms),
        ("transmission_type=zzz", terms),
        ("transmission_type=zzz,yyy", terms),
        ("drive_type=zzz", terms),
        ("drive_type=zzz,yyy", terms),
        ("seller_type=zzz", terms),
        ("seller_type=zzz,yyy", terms),
        ("is_dealer=true&seller_type=zzz", terms),
        ("year_from=1950&year_to=1951", "processed_data_year_idx"),
        ("year_from=2100", "processed_data_year_idx"),
        ("year_to=1950", "processed_data_year_idx"),
        (
            "price_from=100000&price_to=100010",
            "processed_data_price_idx",
        ),
        ("price_to=10", "processed_data_price_idx"),
        ("price_from=100000000", "processed_data_price_idx"),
        ("km_age_to=0", "processed_data_km_age_idx"),
    ];
    let mut failures = Vec::new();
    for (filter, index) in rare {
        for sort in ["listed_at", "price", "year", "km_age"] {
            for order in ["desc", "asc"] {
                let query = format!("{filter}&sort={sort}&order={order}");
                for (shape, plan) in plans(&api_pool, &query).await {
                    let ok = match shape.as_str() {
                        // Lazy: in the index's order, no sort of 5,000 rows.
                        "Walk" => plan.contains("Limit") && !plan.contains("Sort Key"),
                        // Several marks, or a sort without a (mark, sort)
                        // index: 0001's (lower(mark), lower(model)) serves.
                        "Matching" | "Direct" => {
                            plan.contains(index)
                                || (index == "processed_data_mark_"
                                    && plan.contains("processed_data_mark_model_idx"))
                        }
                        _ => true,
                    };
                    if plan.contains("Seq Scan") || !ok {
                        failures.push(format!("{query} ({shape}), wanted {index}:\n{plan}"));
                    }
                }
            }
        }
    }
    // Common values: the planner may walk the sort's index instead, but
    // never scans the table.
    let common = [
        "",
        "mark=Toyota",
        "mark=Toyota,BMW",
        "model=A%201",
        "city=%E5%8C%97%E4%BA%AC",
        "body_type=SUV",
        "body_type=SUV,MPV",
        "engine_type=Electric",
        "transmission_type=CVT",
        "drive_type=AWD",
        "seller_type=dealer",
        "is_dealer=false",
        "is_dealer=true",
        "year_from=2015",
        "price_to=200000",
        "km_age_to=100000",
        "mark=Toyota&price_to=200000",
        "mark=Toyota&year_from=2015",
    ];
    for filter in common {
        for sort in ["listed_at", "price", "year", "km_age"] {
            let query = format!("{filter}&sort={sort}");
            for (shape, plan) in plans(&api_pool, &query).await {
                // Matching runs only after a walk found less than a page.
                if shape != "Matching" && plan.contains("Seq Scan") {
                    failures.push(format!("{query} ({shape}) scans the table:\n{plan}"));
                }
            }
        }
    }
    api_pool.close().await;
    assert!(
        failures.is_empty(),
        "{} plans not served by an index:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The rule that lets Postgres cache a page's plan (db::offers::Planning):
/// the statements it may cache are the walk of the sort's index and the
/// unfiltered or one-mark list, whose generic plan, made without the values
/// and used for all of them, must still take its rows from an index in the
/// sort's order (no sort, no table scan), on page 1 and after a cursor.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn cached_plans_serve_every_value_from_the_sorts_index(pool: PgPool) {
    fill(&pool).await;
    let api_pool = api::pool::bounded(&pool, Duration::from_secs(30));
    let mut conn = api_pool.acquire().await.unwrap();
    let filters = [
        "",
        "mark=Toyota",
        "mark=Zzz",
        "mark=Toyota,BMW",
        "model=zzz",
        "model=A%201,zzz",
        "mark=Toyota&model=zzz",
        "city=zzz",
        "body_type=SUV",
        "engine_type=zzz,Electric",
        "transmission_type=CVT",
        "drive_type=zzz",
        "seller_type=zzz",
        "is_dealer=true",
        "year_from=2015",
        "year_from=2100",
        "price_from=100000&price_to=100010",
        "km_age_to=0",
        "mark=Toyota&year_from=2015",
        "mark=Toyota&price_to=200000",
    ];
    let mut explained = 0;
    let mut failures = Vec::new();
    for filter in filters {
        for sort in ["listed_at", "price", "year", "km_age"] {
            for order in ["desc", "asc"] {
                let query = format!("{filter}&sort={sort}&order={order}");
                let mut request =
                    api::routes::offers::page_request(Some(&query), &Config::for_tests().api)
                        .unwrap();
                for after in [None, Some(position(request.sort))] {
                    request.after = after;
                    let plans = conn
                        .run(async |conn| explain_generic(conn, &request).await)
                        .await
                        .unwrap();
                    for (shape, plan) in plans {
                        explained += 1;
                        let in_index_order = plan.contains("Limit")
                            && plan.contains("Index")
                            && !plan.contains("Sort Key")
                            && !plan.contains("Seq Scan");
                        // Generic: a mark is `lower($n)` in the plan, not
                        // the value itself (as in a custom plan).
                        let blind = !filter.contains("mark=") || plan.contains("lower($");
                        if !in_index_order || !blind {
                            failures.push(format!(
                                "{query} (after: {}, {shape}):\n{plan}",
                                request.after.is_some()
                            ));
                        }
                    }
                }
            }
        }
    }
    drop(conn);
    api_pool.close().await;
    // Every filter had a cached statement (a walk, or the direct list).
    assert_eq!(explained, filters.len() * 4 * 2 * 2);
    assert!(
        failures.is_empty(),
        "{} generic plans not in the sort's index order:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A cursor position for `sort` in the middle of the filled offers.
fn position(sort: db::offers::SortKey) -> db::offers::Position {
    use db::offers::{SortKey, SortValue};
    let value = match sort {
        SortKey::Price => SortValue::Number(200_000),
        SortKey::Year => SortValue::Number(2016),
        SortKey::KmAge => SortValue::Number(100_000),
        SortKey::ListedAt => SortValue::Time("2025-12-01T00:00:00Z".parse().expect("a time")),
    };
    db::offers::Position {
        value: Some(value),
        inner_id: "60100000".to_owned(),
    }
}

/// On the api's connections the typical page (issue 14's bench) is planned
/// once and then runs its cached generic plan, while a statement whose
/// values decide its index (a rare model's matches) is never cached, so it
/// is planned with its values every time (its index: the first test).
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_typical_page_reuses_its_plan_and_value_dependent_statements_are_replanned(
    pool: PgPool,
) {
    fill(&pool).await;
    // One connection, so every page runs on the session inspected below.
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let api_pool = api::pool::bounded(&one, Duration::from_secs(30));
    let config = Config::for_tests().api;
    let typical =
        api::routes::offers::page_request(Some("mark=Toyota&year_from=2015&limit=20"), &config)
            .unwrap();
    let rare = api::routes::offers::page_request(Some("model=zzz"), &config).unwrap();
    for _ in 0..10 {
        let page = api_pool
            .run(async |conn| db::offers::page(conn, &typical).await)
            .await
            .unwrap();
        assert_eq!(page.records.len(), 20);
        let page = api_pool
            .run(async |conn| db::offers::page(conn, &rare).await)
            .await
            .unwrap();
        assert!(page.records.is_empty());
    }
    let prepared: Vec<(String, i64, i64)> = api_pool
        .run(async |conn| {
            let sql = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements";
            Ok(sqlx::query_as(sql).fetch_all(conn).await?)
        })
        .await
        .unwrap();
    let walks: Vec<_> = prepared
        .iter()
        .filter(|(sql, ..)| sql.contains("AS walk") && sql.contains("lower(mark)"))
        .collect();
    let [(_, generic, custom)] = walks[..] else {
        panic!("one prepared walk of the typical page expected: {prepared:#?}");
    };
    // Postgres' default: five custom plans, then the generic one.
    assert!(
        *generic >= 5 && *custom <= 5,
        "the typical page is re-planned: {generic} generic, {custom} custom plans"
    );
    let replanned = ["WITH matching", "IS NULL ORDER BY inner_id"];
    let cached: Vec<_> = prepared
        .iter()
        .filter(|(sql, ..)| replanned.iter().any(|s| sql.contains(s)))
        .collect();
    assert!(
        cached.is_empty(),
        "statements whose values decide their index are cached: {cached:#?}"
    );
    api_pool.close().await;
    one.close().await;
}

/// The plans of a page's statements (the first one in every shape it may
/// take, then the NULL tail), as `EXPLAIN` prints them with the page's
/// values (custom plans).
async fn explain(
    conn: &mut PgConnection,
    request: &PageRequest,
) -> Result<Vec<(String, String)>, DbError> {
    let mut plans = Vec::new();
    for mut statement in db::offers::statements(request, "EXPLAIN ") {
        let lines: Vec<String> = statement
            .query
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        plans.push((statement.label, lines.join("\n")));
    }
    Ok(plans)
}

/// The generic plans (blind to the values) of a page's statements that
/// Postgres may cache ([`Planning::Cached`]), as `EXPLAIN` prints them:
/// each statement is run once on `conn` as the page runs it (so prepared
/// there with the page's parameter types), then explained by its prepared
/// name under `plan_cache_mode = force_generic_plan` (Postgres 15 has no
/// `EXPLAIN (GENERIC_PLAN)`).
async fn explain_generic(
    conn: &mut PgConnection,
    request: &PageRequest,
) -> Result<Vec<(String, String)>, DbError> {
    let mut plans = Vec::new();
    for mut statement in db::offers::statements(request, "") {
        if statement.planning != Planning::Cached {
            continue;
        }
        let sql = statement.query.sql().to_owned();
        statement.query.build().execute(&mut *conn).await?;
        let (name, params): (String, i32) = sqlx::query_as(
            "SELECT name, cardinality(parameter_types) FROM pg_prepared_statements
             WHERE statement = $1 LIMIT 1",
        )
        .bind(&sql)
        .fetch_one(&mut *conn)
        .await?;
        // A generic plan is made without the values: NULL stands for each.
        let values = vec!["NULL"; params as usize].join(", ");
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await?;
        let explain = format!("EXPLAIN EXECUTE {name}({values})");
        let lines: Result<Vec<String>, _> = sqlx::query_scalar(&explain)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await;
        sqlx::query("RESET plan_cache_mode")
            .execute(&mut *conn)
            .await?;
        plans.push((statement.label, lines?.join("\n")));
    }
    Ok(plans)
}
