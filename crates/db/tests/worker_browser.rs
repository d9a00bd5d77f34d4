//! Migration 0010 (issue 15): task parameters, the claim by kind (a worker
//! without a browser never claims render_url), and the page data results
//! carry, fenced by the claim's lease like the result itself.

use domain::fleet::TaskKind;
use std::time::Duration;

use db::results::{self, NewResult, PageData};
use db::tasks;
use serde_json::json;
use sqlx::PgPool;

async fn worker(pool: &PgPool) -> i64 {
    db::workers::register(pool, "test", 4, Duration::from_secs(90))
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn tasks_keep_their_parameters_and_a_claim_takes_only_the_kinds_asked(pool: PgPool) {
    let params = json!({"wait_for": ".listing", "extract": "listing"});
    tasks::insert_with_params(
        &pool,
        TaskKind::RenderUrl,
        &["http://a.test/1".into(), "http://a.test/2".into()],
        &[params.clone(), json!({})],
    )
    .await
    .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &["http://a.test/3".into()])
        .await
        .unwrap();
    let w = worker(&pool).await;
    let proxies: Vec<String> = (0..4).map(|i| format!("http://p{i}:1")).collect();
    db::proxies::insert(&pool, &proxies).await.unwrap();
    let claim = |kinds: &'static [TaskKind]| {
        let pool = pool.clone();
        async move {
            db::claims::claim_pairs(&pool, w, 10, kinds)
                .await
                .unwrap()
                .into_iter()
                .map(|(t, _)| t)
                .collect::<Vec<_>>()
        }
    };
    let plain = claim(&[TaskKind::OfferRefresh, TaskKind::FetchUrl]).await;
    assert_eq!(plain.len(), 1);
    assert_eq!(
        (plain[0].kind.as_str(), &plain[0].params),
        (TaskKind::FetchUrl.as_str(), &json!({}))
    );
    let rendered = claim(TaskKind::ALL).await;
    assert_eq!(rendered.len(), 2, "every kind asked");
    assert!(rendered.iter().all(|t| t.kind == TaskKind::RenderUrl));
    assert_eq!(rendered[0].params, params);
    // `tasks::insert` takes only a known kind; the table refuses others too.
    let refused = sqlx::query("INSERT INTO tasks (kind, target) VALUES ($1, 'x')")
        .bind("screenshot_url")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the kind check still holds");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn page_data_lands_only_under_the_claims_lease_and_names_the_profiles_fields(pool: PgPool) {
    tasks::insert(&pool, TaskKind::RenderUrl, &["http://a.test/1".into()])
        .await
        .unwrap();
    let w = worker(&pool).await;
    db::proxies::insert(&pool, &["http://p:1".into()])
        .await
        .unwrap();
    let task = db::claims::claim_pairs(&pool, w, 1, TaskKind::ALL)
        .await
        .unwrap()
        .remove(0)
        .0;
    let result = NewResult {
        task_id: task.id,
        lease: task.lease,
        worker_id: w,
        status_code: 200,
        headers: json!({}),
        body: Some("<html></html>".into()),
        body_truncated: false,
    };
    let page = PageData {
        task_id: task.id,
        lease: task.lease,
        final_url: Some("http://a.test/1?x".into()),
        profile: Some("listing".into()),
        data: Some(json!({"title": "BMW", "price": null, "photos": []})),
        missing_fields: Some(vec!["photos".into(), "price".into()]),
        screenshot: Some(b"\x89PNG".to_vec()),
    };
    let mut tx = pool.begin().await.unwrap();
    results::save_result(&mut tx, &[result]).await.unwrap();
    let stale = PageData {
        lease: task.lease - 1,
        ..page.clone()
    };
    assert_eq!(results::save_page_data(&mut tx, &[stale]).await.unwrap(), 0);
    assert_eq!(results::save_page_data(&mut tx, &[page]).await.unwrap(), 1);
    tx.commit().await.unwrap();

    assert_eq!(results::profiles(&pool).await.unwrap(), vec!["listing"]);
    assert_eq!(
        results::data_fields(&pool, "listing").await.unwrap(),
        vec!["photos", "price", "title"]
    );
    let (final_url, missing, png): (String, Vec<String>, Vec<u8>) =
        sqlx::query_as("SELECT final_url, missing_fields, screenshot FROM results")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(final_url, "http://a.test/1?x");
    assert_eq!(missing, vec!["photos", "price"]);
    assert_eq!(png, b"\x89PNG");
}
