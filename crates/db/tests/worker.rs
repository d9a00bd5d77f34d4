//! The worker fleet's db functions (tasks, proxies, workers, results), each
//! against a real Postgres: claims, the lease fence, retries, cleanup.

use domain::fleet::{ProxyStatus, TaskKind, TaskStatus, WorkerStatus};
use std::time::Duration;

use db::proxies;
use db::results::{self, NewResult};
use db::tasks::{self, Lease, RetryRule};
use db::workers::{self, WorkerStats};
use serde_json::json;
use sqlx::PgPool;

async fn worker(pool: &PgPool) -> i64 {
    workers::register(pool, "test", 4, Duration::from_secs(90))
        .await
        .unwrap()
}

fn targets(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("id{i}")).collect()
}

fn result(task: &tasks::ClaimedTask, worker_id: i64) -> NewResult {
    NewResult {
        task_id: task.id,
        lease: task.lease,
        worker_id,
        status_code: 200,
        headers: json!({"content-type": "text/plain"}),
        body: Some("ok".into()),
        body_truncated: false,
    }
}

/// Claims up to `n` due tasks for `w` the way the worker does
/// (`claims::claim_pairs`: each with a free proxy).
async fn claim(pool: &PgPool, w: i64, n: i64) -> Vec<tasks::ClaimedTask> {
    db::claims::claim_pairs(pool, w, n, TaskKind::ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// A task row as a claim returns it.
async fn claimed_row(pool: &PgPool, id: i64) -> tasks::ClaimedTask {
    sqlx::query_as("SELECT id, kind, target, lease, attempts, params FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn status_of(pool: &PgPool, id: i64) -> (String, i64, i32) {
    sqlx::query_as("SELECT status, lease, attempts FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn uploading_the_same_task_twice_stores_it_once(pool: PgPool) {
    assert_eq!(
        tasks::insert(&pool, TaskKind::FetchUrl, &targets(3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        tasks::insert(&pool, TaskKind::FetchUrl, &targets(5))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        tasks::insert(&pool, TaskKind::OfferRefresh, &targets(1))
            .await
            .unwrap(),
        1
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_completion_and_a_result_from_a_lease_taken_away_change_nothing(pool: PgPool) {
    use db::claims::finish_claims;
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    proxies::insert(&pool, &["http://p:1".into()])
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let old = claim(&pool, w, 1).await.remove(0);
    // Cleanup takes the claim away (the worker died), another worker claims.
    sqlx::query("UPDATE workers SET last_heartbeat = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(workers::mark_stale_dead(&pool).await.unwrap(), vec![w]);
    assert_eq!(tasks::rescue_from_dead(&pool).await.unwrap(), 1);
    assert_eq!(proxies::free_from_dead(&pool).await.unwrap(), 1);
    let w2 = worker(&pool).await;
    let new = claim(&pool, w2, 1).await.remove(0);
    assert_eq!(new.id, old.id);
    assert!(new.lease > old.lease);

    let late = Lease {
        id: old.id,
        lease: old.lease,
        worker_id: w,
    };
    assert!(results::save_result(&mut conn, &[result(&old, w)])
        .await
        .unwrap()
        .is_empty());
    let ended = finish_claims(&mut conn, &[result(&old, w)], &[late], &[])
        .await
        .unwrap();
    assert!(ended.fetched.is_empty() && ended.gone.is_empty());
    assert!(
        tasks::increment_task_attempts(&mut conn, &[late], &["x".into()], rule(3))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(results::count(&pool).await.unwrap(), 0);

    let done = finish_claims(&mut conn, &[result(&new, w2)], &[], &[])
        .await
        .unwrap();
    assert_eq!(done.fetched, vec![new.id]);
    assert_eq!(
        status_of(&pool, new.id).await.0,
        TaskStatus::Completed.as_str()
    );
    let (worker_id, saves): (i64, i32) = sqlx::query_as("SELECT worker_id, saves FROM results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((worker_id, saves), (w2, 1));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn saving_a_result_again_under_a_newer_lease_updates_the_row(pool: PgPool) {
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    proxies::insert(&pool, &["http://p:1".into()])
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let first = claim(&pool, w, 1).await.remove(0);
    results::save_result(&mut conn, &[result(&first, w)])
        .await
        .unwrap();
    tasks::hand_back(&pool, w, &[]).await.unwrap();
    proxies::hand_back(&pool, w, &[]).await.unwrap();
    let second = claim(&pool, w, 1).await.remove(0);
    let mut again = result(&second, w);
    again.status_code = 201;
    results::save_result(&mut conn, &[again]).await.unwrap();
    let rows: Vec<(i32, i32, i64)> =
        sqlx::query_as("SELECT status_code, saves, lease FROM results")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![(201, 2, second.lease)]);
}

fn rule(max_attempts: i32) -> RetryRule {
    RetryRule {
        max_attempts,
        backoff: Duration::from_secs(10),
        backoff_max: Duration::from_secs(15),
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_failing_task_backs_off_then_fails_with_its_last_error(pool: PgPool) {
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    proxies::insert(&pool, &["http://p:1".into()])
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for attempt in 1..=3 {
        sqlx::query("UPDATE tasks SET run_after = now()")
            .execute(&pool)
            .await
            .unwrap();
        let (t, proxy) = claim_leases(&pool, w, 1).await.remove(0);
        let t = tasks::ClaimedTask {
            id: t.id,
            lease: t.lease,
            ..claimed_row(&pool, t.id).await
        };
        db::claims::finish_claims(&mut conn, &[], &[], &[proxy])
            .await
            .unwrap();
        assert_eq!(t.attempts, attempt - 1);
        let lease = Lease {
            id: t.id,
            lease: t.lease,
            worker_id: w,
        };
        let done = tasks::increment_task_attempts(
            &mut conn,
            &[lease],
            &[format!("HTTP 50{attempt}")],
            rule(3),
        )
        .await
        .unwrap();
        let expected = if attempt < 3 {
            TaskStatus::Pending.as_str()
        } else {
            TaskStatus::Failed.as_str()
        };
        assert_eq!(done, vec![(t.id, expected.parse().unwrap())]);
        if attempt < 3 {
            // Backing off: not claimable yet, waiting 10 s then 15 s (capped).
            assert!(claim(&pool, w, 1).await.is_empty());
            let wait: f64 = sqlx::query_scalar(
                "SELECT extract(epoch FROM run_after - now())::float8 FROM tasks",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            let want = if attempt == 1 { 10.0 } else { 15.0 };
            assert!((wait - want).abs() < 2.0, "attempt {attempt}: waits {wait}");
        }
    }
    let (error, finished): (String, bool) =
        sqlx::query_as("SELECT last_error, finished_at IS NOT NULL FROM tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((error.as_str(), finished), ("HTTP 503", true));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_blocked_proxy_rests_until_its_cooldown_then_cleanup_frees_it(pool: PgPool) {
    let w = worker(&pool).await;
    proxies::insert(
        &pool,
        &["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
    )
    .await
    .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(2))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let leases: Vec<Lease> = claim_leases(&pool, w, 5)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(leases.len(), 2);
    assert_eq!(
        proxies::mark_proxy_blocked(&mut conn, &leases[..1], Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    let release = |leases: Vec<Lease>| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            db::claims::finish_claims(&mut conn, &[], &[], &leases)
                .await
                .unwrap();
        }
    };
    release(leases[1..].to_vec()).await;
    // Releasing twice (a late release) changes nothing: the blocked one
    // stays blocked.
    release(leases.clone()).await;
    assert_eq!(
        proxies::count_by_status(&pool).await.unwrap(),
        vec![
            (ProxyStatus::Free.as_str().into(), 1),
            (ProxyStatus::InUse.as_str().into(), 0),
            (ProxyStatus::Blocked.as_str().into(), 1),
            (ProxyStatus::Cooldown.as_str().into(), 0)
        ]
    );
    assert_eq!(proxies::unblock_expired(&pool).await.unwrap(), 0);
    sqlx::query(
        "UPDATE proxies SET blocked_until = now() - interval '1 second' WHERE status = 'blocked'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(proxies::unblock_expired(&pool).await.unwrap(), 1);
    tasks::insert(
        &pool,
        TaskKind::FetchUrl,
        &["more-1".into(), "more-2".into()],
    )
    .await
    .unwrap();
    assert_eq!(claim_leases(&pool, w, 5).await.len(), 2);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn cleanup_frees_what_a_dead_worker_held_and_leaves_the_living_alone(pool: PgPool) {
    let dead = worker(&pool).await;
    let alive = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(4))
        .await
        .unwrap();
    proxies::insert(
        &pool,
        &(0..4)
            .map(|i| format!("http://p{i}:8080"))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(claim(&pool, dead, 2).await.len(), 2);
    assert_eq!(claim(&pool, alive, 2).await.len(), 2);
    assert_eq!(
        workers::update_heartbeat(&mut conn, dead, Default::default())
            .await
            .unwrap(),
        Some(WorkerStatus::Alive)
    );
    sqlx::query("UPDATE workers SET last_heartbeat = now() - interval '91 seconds' WHERE id = $1")
        .bind(dead)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(workers::mark_stale_dead(&pool).await.unwrap(), vec![dead]);
    assert_eq!(
        workers::update_heartbeat(&mut conn, dead, Default::default())
            .await
            .unwrap(),
        Some(WorkerStatus::Dead),
        "a dead worker stays dead"
    );
    assert!(
        !workers::mark_stopped(&pool, dead).await.unwrap(),
        "a clean exit after being declared dead leaves the row dead"
    );
    assert_eq!(tasks::rescue_from_dead(&pool).await.unwrap(), 2);
    assert_eq!(proxies::free_from_dead(&pool).await.unwrap(), 2);
    assert_eq!(
        tasks::count_by_status(&pool).await.unwrap(),
        vec![
            (TaskStatus::Pending.as_str().into(), 2),
            (TaskStatus::Running.as_str().into(), 2),
            (TaskStatus::Completed.as_str().into(), 0),
            (TaskStatus::Failed.as_str().into(), 0)
        ]
    );
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM proxies WHERE worker_id = $1")
        .bind(alive)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 2);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn shutdown_hands_back_tasks_and_proxies_and_marks_the_worker_stopped(pool: PgPool) {
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(3))
        .await
        .unwrap();
    proxies::insert(
        &pool,
        &[
            "http://p:1".into(),
            "http://p:2".into(),
            "http://p:3".into(),
        ],
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let claimed = claim(&pool, w, 3).await;
    assert_eq!(tasks::hand_back(&pool, w, &[]).await.unwrap(), 3);
    assert_eq!(proxies::hand_back(&pool, w, &[]).await.unwrap(), 3);
    assert!(workers::mark_stopped(&pool, w).await.unwrap());
    assert!(
        !workers::mark_stopped(&pool, w).await.unwrap(),
        "stopped once"
    );
    assert_eq!(
        workers::update_heartbeat(&mut conn, w, Default::default())
            .await
            .unwrap(),
        Some(WorkerStatus::Stopped),
        "a stopped worker's heartbeat records nothing"
    );
    let (status, lease, _) = status_of(&pool, claimed[0].id).await;
    assert_eq!(
        (status.as_str(), lease),
        (TaskStatus::Pending.as_str(), claimed[0].lease + 1)
    );
    let s: String = sqlx::query_scalar("SELECT status FROM workers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(s, WorkerStatus::Stopped.as_str());
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn finished_tasks_past_retention_are_purged_in_batches(pool: PgPool) {
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(5))
        .await
        .unwrap();
    let urls: Vec<String> = (0..4).map(|i| format!("http://p{i}:1")).collect();
    proxies::insert(&pool, &urls).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let claimed = claim(&pool, w, 4).await;
    let leases: Vec<Lease> = claimed
        .iter()
        .map(|t| Lease {
            id: t.id,
            lease: t.lease,
            worker_id: w,
        })
        .collect();
    db::claims::finish_claims(&mut conn, &[], &leases, &[])
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET finished_at = now() - interval '8 days' WHERE id <> $1")
        .bind(claimed[3].id)
        .execute(&pool)
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 86_400);
    assert_eq!(tasks::purge_finished(&pool, week, 2).await.unwrap(), 2);
    assert_eq!(tasks::purge_finished(&pool, week, 2).await.unwrap(), 1);
    assert_eq!(tasks::purge_finished(&pool, week, 2).await.unwrap(), 0);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 2, "the recent one and the pending one stay");
    assert_eq!(tasks::finished_last_hour(&pool).await.unwrap(), (1, 0));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn worker_stats_add_up(pool: PgPool) {
    let w = worker(&pool).await;
    let stats = WorkerStats {
        completed: 3,
        failed: 1,
        retried: 2,
        proxies_blocked: 1,
    };
    workers::increment_worker_stats(&pool, w, stats)
        .await
        .unwrap();
    workers::increment_worker_stats(&pool, w, stats)
        .await
        .unwrap();
    let rows = workers::list_recent(&pool).await.unwrap();
    assert_eq!((rows[0].tasks_completed, rows[0].tasks_failed), (6, 2));
    assert!(rows[0].heartbeat_age < 5.0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn handing_back_what_no_slot_holds_keeps_the_claims_named(pool: PgPool) {
    let w = worker(&pool).await;
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(3))
        .await
        .unwrap();
    proxies::insert(
        &pool,
        &[
            "http://p:1".into(),
            "http://p:2".into(),
            "http://p:3".into(),
        ],
    )
    .await
    .unwrap();
    let pairs = db::claims::claim_pairs(&pool, w, 3, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    let claimed: Vec<&tasks::ClaimedTask> = pairs.iter().map(|(t, _)| t).collect();
    let keep_task = claimed[0].id;
    let keep_proxy = pairs[0].1.id;
    assert_eq!(tasks::hand_back(&pool, w, &[keep_task]).await.unwrap(), 2);
    assert_eq!(
        proxies::hand_back(&pool, w, &[keep_proxy]).await.unwrap(),
        2
    );
    let (status, lease, _) = status_of(&pool, keep_task).await;
    assert_eq!(
        (status.as_str(), lease),
        (TaskStatus::Running.as_str(), claimed[0].lease)
    );
    let (status, lease, _) = status_of(&pool, claimed[1].id).await;
    assert_eq!(
        (status.as_str(), lease),
        (TaskStatus::Pending.as_str(), claimed[1].lease + 1)
    );
    let in_use: Vec<i64> = sqlx::query_scalar("SELECT id FROM proxies WHERE status = 'in_use'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(in_use, vec![keep_proxy]);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_claim_pairs_each_due_task_of_its_kinds_with_a_free_proxy_and_leaves_the_rest(
    pool: PgPool,
) {
    let w = worker(&pool).await;
    proxies::insert(
        &pool,
        &[
            "http://p1:1".into(),
            "http://p2:2".into(),
            "http://p3:3".into(),
        ],
    )
    .await
    .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(2))
        .await
        .unwrap();
    tasks::insert(&pool, TaskKind::RenderUrl, &["r0".to_owned()])
        .await
        .unwrap();

    let pairs = db::claims::claim_pairs(&pool, w, 8, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    assert_eq!(
        pairs.len(),
        2,
        "two due fetch_url tasks, three free proxies"
    );
    assert!(pairs
        .iter()
        .all(|(t, p)| t.kind == TaskKind::FetchUrl && t.lease > 0 && p.lease > 0));
    let mut proxy_ids: Vec<i64> = pairs.iter().map(|(_, p)| p.id).collect();
    proxy_ids.dedup();
    assert_eq!(proxy_ids.len(), 2, "one proxy per task");
    let held: Vec<(String, i64, Option<i64>)> =
        sqlx::query_as("SELECT status, lease, worker_id FROM proxies ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        held.iter()
            .filter(|(s, l, id)| s == ProxyStatus::InUse.as_str()
                && pairs.iter().any(|(_, p)| p.lease == *l)
                && *id == Some(w))
            .count(),
        2
    );
    assert_eq!(
        held.iter()
            .filter(|(s, l, id)| s == ProxyStatus::Free.as_str() && *l == 0 && id.is_none())
            .count(),
        1,
        "the surplus proxy is untouched"
    );
    let (status, _, _) = status_of(&pool, pairs[0].0.id).await;
    assert_eq!(status, TaskStatus::Running.as_str());
    // The render_url task waits for a worker with a browser; one proxy is free.
    assert!(db::claims::claim_pairs(&pool, w, 8, &[TaskKind::FetchUrl])
        .await
        .unwrap()
        .is_empty());
    let render = db::claims::claim_pairs(&pool, w, 8, &[TaskKind::FetchUrl, TaskKind::RenderUrl])
        .await
        .unwrap();
    assert_eq!(render.len(), 1);
    assert_eq!(render[0].0.target, "r0");
    // No free proxy left: nothing is claimed, not even a task.
    tasks::insert(&pool, TaskKind::FetchUrl, &["late".to_owned()])
        .await
        .unwrap();
    assert!(db::claims::claim_pairs(&pool, w, 8, &[TaskKind::FetchUrl])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks WHERE status = 'pending'")
            .fetch_one(&pool)
            .await
            .unwrap(),
        1
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn concurrent_pair_claims_skip_what_the_other_holds(pool: PgPool) {
    let w = worker(&pool).await;
    let urls: Vec<String> = (0..6).map(|i| format!("http://p{i}:1")).collect();
    proxies::insert(&pool, &urls).await.unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(10))
        .await
        .unwrap();
    let mut first = pool.begin().await.unwrap();
    let a = db::claims::claim_pairs(&mut *first, w, 4, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    // Not committed yet: its tasks and proxies are locked and skipped.
    let b = db::claims::claim_pairs(&pool, w, 4, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert_eq!((a.len(), b.len()), (4, 2), "six proxies between them");
    let mut tasks: Vec<i64> = a.iter().chain(&b).map(|(t, _)| t.id).collect();
    let mut proxies: Vec<i64> = a.iter().chain(&b).map(|(_, p)| p.id).collect();
    tasks.sort_unstable();
    tasks.dedup();
    proxies.sort_unstable();
    proxies.dedup();
    assert_eq!((tasks.len(), proxies.len()), (6, 6));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn finishing_claims_completes_saves_frees_and_counts_only_current_leases(pool: PgPool) {
    use db::claims::{claim_pairs, finish_claims, Finished};
    let w = worker(&pool).await;
    let urls: Vec<String> = (0..4).map(|i| format!("http://p{i}:1")).collect();
    proxies::insert(&pool, &urls).await.unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(4))
        .await
        .unwrap();
    let pairs = claim_pairs(&pool, w, 4, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    assert_eq!(pairs.len(), 4);
    let lease = |t: &tasks::ClaimedTask| Lease {
        id: t.id,
        lease: t.lease,
        worker_id: w,
    };
    let proxy = |p: &db::proxies::ClaimedProxy| Lease {
        id: p.id,
        lease: p.lease,
        worker_id: w,
    };
    // The fourth claim was taken away (its lease bumped, as cleanup does).
    sqlx::query(
        "UPDATE tasks SET status = 'pending', worker_id = NULL, lease = lease + 1 WHERE id = $1",
    )
    .bind(pairs[3].0.id)
    .execute(&pool)
    .await
    .unwrap();
    let (fetched, gone) = (&pairs[0..2], &pairs[2..4]);
    let mut conn = pool.acquire().await.unwrap();
    let finished = finish_claims(
        &mut conn,
        &fetched
            .iter()
            .map(|(t, _)| result(t, w))
            .collect::<Vec<_>>(),
        &gone.iter().map(|(t, _)| lease(t)).collect::<Vec<_>>(),
        &pairs[0..3]
            .iter()
            .map(|(_, p)| proxy(p))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut expected = Finished {
        fetched: vec![pairs[0].0.id, pairs[1].0.id],
        gone: vec![pairs[2].0.id],
    };
    let mut got = finished;
    got.fetched.sort_unstable();
    expected.fetched.sort_unstable();
    assert_eq!(got, expected, "the taken-away claim is not completed");
    let outcomes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, outcome FROM tasks ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let by_id = |id: i64| outcomes[pairs.iter().position(|(t, _)| t.id == id).unwrap()].clone();
    assert_eq!(
        by_id(pairs[0].0.id),
        (TaskStatus::Completed.as_str().into(), Some("ok".into()))
    );
    assert_eq!(
        by_id(pairs[2].0.id),
        (
            TaskStatus::Completed.as_str().into(),
            Some("not_found".into())
        )
    );
    assert_eq!(by_id(pairs[3].0.id).0, TaskStatus::Pending.as_str());
    assert_eq!(
        results::count(&pool).await.unwrap(),
        2,
        "results for the pages only"
    );
    let in_use: i64 = sqlx::query_scalar("SELECT count(*) FROM proxies WHERE status = 'in_use'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_use, 1, "three released, the fourth still held");
    let completed: i64 = sqlx::query_scalar("SELECT tasks_completed FROM workers WHERE id = $1")
        .bind(w)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(completed, 3);
    // The same finish again (a lost reply, retried): nothing twice.
    let again = finish_claims(
        &mut conn,
        &fetched
            .iter()
            .map(|(t, _)| result(t, w))
            .collect::<Vec<_>>(),
        &[],
        &pairs[0..2]
            .iter()
            .map(|(_, p)| proxy(p))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(again, Finished::default());
    let saves: i64 = sqlx::query_scalar("SELECT sum(saves) FROM results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(saves, 2);
}

/// Claims commit without waiting for their WAL flush, so a Postgres crash
/// can forget a claim whose reply its worker already has. The next claim of
/// that task and proxy gets new lease numbers (the clock has moved on), so
/// the first holder's late writes change nothing, whichever worker claims
/// again: the same one (its other slot now holds the task) or another.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_claim_forgotten_in_a_crash_and_made_again_by_its_worker_fences_out_the_first(
    pool: PgPool,
) {
    forgotten_claim_is_fenced_out(pool, Reclaimer::SameWorker).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_claim_forgotten_in_a_crash_and_made_by_another_worker_fences_out_the_first(
    pool: PgPool,
) {
    forgotten_claim_is_fenced_out(pool, Reclaimer::OtherWorker).await;
}

enum Reclaimer {
    SameWorker,
    OtherWorker,
}

async fn forgotten_claim_is_fenced_out(pool: PgPool, reclaimer: Reclaimer) {
    use db::claims::{claim_pairs, finish_claims};
    let first = worker(&pool).await;
    let second = match reclaimer {
        Reclaimer::SameWorker => first,
        Reclaimer::OtherWorker => worker(&pool).await,
    };
    proxies::insert(&pool, &["http://p0:1".into()])
        .await
        .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    // An earlier claim, handed back: the rows carry a lease from the clock.
    let earlier = claim_pairs(&pool, first, 1, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    tasks::hand_back(&mut *conn, first, &[]).await.unwrap();
    proxies::hand_back(&mut *conn, first, &[]).await.unwrap();
    let leases = "SELECT (SELECT lease FROM tasks), (SELECT lease FROM proxies)";
    let before: (i64, i64) = sqlx::query_as(leases).fetch_one(&pool).await.unwrap();
    assert_eq!(before, (earlier[0].0.lease + 1, earlier[0].1.lease + 1));

    let forgotten = claim_pairs(&pool, first, 1, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    // The crash: the rows are as they were before the claim.
    sqlx::query(
        "UPDATE tasks SET status = 'pending', worker_id = NULL, claimed_at = NULL, lease = $1",
    )
    .bind(before.0)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE proxies SET status = 'free', worker_id = NULL, lease = $1")
        .bind(before.1)
        .execute(&pool)
        .await
        .unwrap();
    let again = claim_pairs(&pool, second, 1, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    let ((task, proxy), (task_now, proxy_now)) = (&forgotten[0], &again[0]);
    assert_eq!((task.id, proxy.id), (task_now.id, proxy_now.id));
    assert!(
        task_now.lease > task.lease && proxy_now.lease > proxy.lease,
        "leases after the crash {:?} must pass those it forgot {:?}",
        (task_now.lease, proxy_now.lease),
        (task.lease, proxy.lease)
    );

    let task_late = Lease {
        id: task.id,
        lease: task.lease,
        worker_id: first,
    };
    let proxy_late = Lease {
        id: proxy.id,
        lease: proxy.lease,
        worker_id: first,
    };
    let late = finish_claims(&mut conn, &[result(task, first)], &[], &[proxy_late])
        .await
        .unwrap();
    assert!(
        late.fetched.is_empty(),
        "the first holder completes nothing"
    );
    assert!(results::save_result(&mut conn, &[result(task, first)])
        .await
        .unwrap()
        .is_empty());
    assert!(finish_claims(&mut conn, &[], &[task_late], &[])
        .await
        .unwrap()
        .gone
        .is_empty());
    assert!(
        tasks::retry_elsewhere(&mut conn, &[task_late], &["x".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tasks::increment_task_attempts(&mut conn, &[task_late], &["x".into()], rule(1))
            .await
            .unwrap()
            .is_empty()
    );
    finish_claims(&mut conn, &[], &[], &[proxy_late])
        .await
        .unwrap();
    assert_eq!(
        proxies::mark_proxy_blocked(&mut conn, &[proxy_late], Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        status_of(&pool, task.id).await.0,
        TaskStatus::Running.as_str()
    );
    let proxy_status: String = sqlx::query_scalar("SELECT status FROM proxies")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        proxy_status,
        ProxyStatus::InUse.as_str(),
        "still the second claim's"
    );
    assert_eq!(results::count(&pool).await.unwrap(), 0);

    let proxy_held = Lease {
        id: proxy_now.id,
        lease: proxy_now.lease,
        worker_id: second,
    };
    let done = finish_claims(&mut conn, &[result(task_now, second)], &[], &[proxy_held])
        .await
        .unwrap();
    assert_eq!(done.fetched, vec![task_now.id]);
    assert_eq!(results::count(&pool).await.unwrap(), 1);
}

/// The plans of both claim statements for `kinds`, custom (with the values)
/// and generic (what a prepared statement settles on), on one connection.
async fn claim_plans(pool: &PgPool, worker_id: i64) -> Vec<(String, String)> {
    let mut conn = pool.acquire().await.unwrap();
    let mut plans = Vec::new();
    for (name, sql) in [("claim_pairs", db::claims::CLAIM_PAIRS_SQL)] {
        sqlx::raw_sql(&format!("PREPARE {name}(bigint, bigint, text[]) AS {sql}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            sqlx::raw_sql(&format!("SET plan_cache_mode = {mode}"))
                .execute(&mut *conn)
                .await
                .unwrap();
            let lines: Vec<String> = sqlx::query_scalar(&format!(
                "EXPLAIN EXECUTE {name}({worker_id}, 8, '{{fetch_url}}')"
            ))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            plans.push((format!("{name}, {mode}"), lines.join("\n")));
        }
    }
    plans
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn after_an_upload_claims_walk_the_pending_index_instead_of_sorting_the_queue(pool: PgPool) {
    let w = worker(&pool).await;
    let proxy_urls: Vec<String> = (0..8).map(|i| format!("http://p{i}:1")).collect();
    proxies::insert(&pool, &proxy_urls).await.unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(5_000))
        .await
        .unwrap();
    tasks::refresh_planner_stats(&pool).await.unwrap();

    for (statement, plan) in claim_plans(&pool, w).await {
        assert!(
            plan.contains("Index Scan using tasks_pending_idx on tasks")
                && !plan.contains("Bitmap Heap Scan on tasks")
                && !plan.contains("Sort Key: tasks.run_after"),
            "{statement}: a claim must take the first due tasks from the pending index in order, \
             not read and sort the whole queue:\n{plan}"
        );
    }
}

/// Claims every due task it can for `w`, each with a free proxy, the way the
/// worker does; returns the task and proxy leases.
async fn claim_leases(pool: &PgPool, w: i64, n: i64) -> Vec<(Lease, Lease)> {
    db::claims::claim_pairs(pool, w, n, TaskKind::ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, p)| {
            (
                Lease {
                    id: t.id,
                    lease: t.lease,
                    worker_id: w,
                },
                Lease {
                    id: p.id,
                    lease: p.lease,
                    worker_id: w,
                },
            )
        })
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_task_blocked_through_n_distinct_proxies_fails_without_an_attempt(pool: PgPool) {
    let w = worker(&pool).await;
    proxies::insert(&pool, &["http://p1:1".into(), "http://p2:1".into()])
        .await
        .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut blocked_through = Vec::new();
    // Blocked twice through the first proxy, then through the second.
    for round in 0..3 {
        let (task, proxy) = claim_leases(&pool, w, 1).await.remove(0);
        blocked_through.push(proxy.id);
        let done = tasks::block(
            &mut conn,
            &[task],
            &[proxy.id],
            &["HTTP 403 through the proxy".into()],
            2,
        )
        .await
        .unwrap();
        let expected = if round < 2 {
            TaskStatus::Pending
        } else {
            TaskStatus::Failed
        };
        assert_eq!(done, vec![(task.id, expected)], "round {round}");
        // The proxy is freed so that the next round may claim it again.
        db::claims::finish_claims(&mut conn, &[], &[], &[proxy])
            .await
            .unwrap();
        if round == 0 {
            // Round 1 goes through the same proxy again: force it.
            sqlx::query("UPDATE proxies SET last_used_at = NULL WHERE id = $1")
                .bind(proxy.id)
                .execute(&pool)
                .await
                .unwrap();
        } else {
            sqlx::query(
                "UPDATE proxies SET last_used_at = now() + interval '1 hour' WHERE id = $1",
            )
            .bind(proxy.id)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    assert_eq!(
        blocked_through[0], blocked_through[1],
        "the same proxy twice"
    );
    assert_ne!(blocked_through[1], blocked_through[2]);
    let (status, attempts, error, blocked_by): (String, i32, String, Vec<i64>) =
        sqlx::query_as("SELECT status, attempts, last_error, blocked_by FROM tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        (TaskStatus::Failed.as_str(), 0)
    );
    assert_eq!(blocked_by.len(), 2, "distinct proxies only: {blocked_by:?}");
    assert_eq!(
        error,
        "blocked by 2 proxies (last: HTTP 403 through the proxy)"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_proxy_that_fails_itself_cools_down_longer_each_time_and_its_task_moves_on_free(
    pool: PgPool,
) {
    let w = worker(&pool).await;
    proxies::insert(&pool, &["http://p1:1".into()])
        .await
        .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(1))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let base = Duration::from_secs(30);
    let cap = Duration::from_secs(100);
    let mut rests = Vec::new();
    for round in 0..4 {
        let (task, proxy) = claim_leases(&pool, w, 1).await.remove(0);
        let reason = "the proxy wants credentials (HTTP 407)".to_owned();
        let moved = tasks::rotate(&mut conn, &[task], std::slice::from_ref(&reason), 4)
            .await
            .unwrap();
        let expected = if round < 3 {
            TaskStatus::Pending
        } else {
            TaskStatus::Failed
        };
        assert_eq!(moved, vec![(task.id, expected)]);
        assert_eq!(
            proxies::cool_down(&mut conn, &[proxy], &[reason], base, cap)
                .await
                .unwrap(),
            1
        );
        let rest: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM blocked_until - now())::float8 FROM proxies WHERE status = 'cooldown'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        rests.push(rest.round());
        // Its time is up.
        sqlx::query("UPDATE proxies SET blocked_until = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(proxies::unblock_expired(&pool).await.unwrap(), 1);
    }
    assert_eq!(rests, vec![30.0, 60.0, 100.0, 100.0], "doubled, capped");
    let (status, attempts, error): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, last_error FROM tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        (TaskStatus::Failed.as_str(), 0)
    );
    assert!(error.starts_with("sent back by 4 proxy faults"), "{error}");
    let resting = proxies::resting(&pool, 10).await.unwrap();
    assert!(resting.is_empty(), "freed again");
    let (faults, total): (i32, i64) = sqlx::query_as("SELECT faults, total_faults FROM proxies")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((faults, total), (4, 4));
    // A good answer through it resets the faults in a row.
    tasks::insert(&pool, TaskKind::FetchUrl, &["fresh".to_owned()])
        .await
        .unwrap();
    let (_, proxy) = claim_leases(&pool, w, 1).await.remove(0);
    db::claims::finish_claims(&mut conn, &[], &[], &[proxy])
        .await
        .unwrap();
    let faults: i32 = sqlx::query_scalar("SELECT faults FROM proxies")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(faults, 0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_binary_body_keeps_its_bytes_and_results_go_with_their_purged_tasks(pool: PgPool) {
    use db::claims::finish_claims;
    let w = worker(&pool).await;
    proxies::insert(&pool, &["http://p1:1".into(), "http://p2:1".into()])
        .await
        .unwrap();
    tasks::insert(&pool, TaskKind::FetchUrl, &targets(2))
        .await
        .unwrap();
    let claimed = db::claims::claim_pairs(&pool, w, 2, &[TaskKind::FetchUrl])
        .await
        .unwrap();
    let png = vec![0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0];
    let mut conn = pool.acquire().await.unwrap();
    let pages: Vec<NewResult> = claimed
        .iter()
        .map(|(t, _)| NewResult {
            body: Some(png.clone()),
            ..result(t, w)
        })
        .collect();
    let done = finish_claims(&mut conn, &pages, &[], &[]).await.unwrap();
    assert_eq!(done.fetched.len(), 2);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM results")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, vec![png.clone(), png]);
    sqlx::query("UPDATE tasks SET finished_at = now() - interval '8 days' WHERE id = $1")
        .bind(claimed[0].0.id)
        .execute(&pool)
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 86_400);
    assert_eq!(tasks::purge_finished(&pool, week, 10).await.unwrap(), 1);
    let left: Vec<i64> = sqlx::query_scalar("SELECT task_id FROM results")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![claimed[1].0.id],
        "the purged task's result went with it"
    );
}
