//! `GET /offers` and `GET /offers/{inner_id}` against a reference computed
//! from the rows each test inserts.

mod common;

use std::collections::HashSet;

use common::*;
use sqlx::PgPool;

const IDS: u64 = 10_000_000;

/// Walks every page of `query` and returns the ids in order.
async fn walk(state: &api::AppState, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let uri = match &cursor {
            Some(c) => format!("/api/v1/offers?{query}&cursor={c}"),
            None => format!("/api/v1/offers?{query}"),
        };
        let answer = get(state, &uri, token).await;
        assert_eq!(
            answer.status,
            200,
            "{uri}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        ids.extend(answer.ids());
        match answer.json()["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("more than 10,000 pages");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_sort_in_both_directions_matches_the_reference_order(pool: PgPool) {
    let offers = generate(300, IDS, 1);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let active: Vec<&Offer> = offers.iter().filter(|o| o.is_active).collect();
    for sort in ["price", "year", "km_age", "listed_at"] {
        for (order, desc) in [("asc", false), ("desc", true)] {
            let got = walk(
                &state,
                &token,
                &format!("sort={sort}&order={order}&limit=7"),
            )
            .await;
            assert_eq!(
                got,
                reference_order(&active, sort, desc),
                "sort={sort} order={order}"
            );
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_default_is_newest_first_twenty_per_page(pool: PgPool) {
    let offers = generate(60, IDS, 2);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let active: Vec<&Offer> = offers.iter().filter(|o| o.is_active).collect();
    let answer = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let expected = reference_order(&active, "listed_at", true);
    assert_eq!(answer.ids(), expected[..20].to_vec());
    // Items are the stored records, whole.
    let first = &answer.json()["items"][0];
    let stored = offers.iter().find(|o| o.inner_id == expected[0]).unwrap();
    assert_eq!(*first, stored.record());
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn each_filter_returns_exactly_the_matching_active_offers(pool: PgPool) {
    let offers = generate(400, IDS, 3);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    type Pred = Box<dyn Fn(&Offer) -> bool>;
    let eq = |v: &Option<String>, want: &str| v.as_deref() == Some(want);
    let eq_ci = |v: &Option<String>, want: &str| {
        v.as_deref().map(str::to_lowercase) == Some(want.to_lowercase())
    };
    let cases: Vec<(&str, Pred)> = vec![
        ("mark=bmw", Box::new(move |o| eq_ci(&o.mark, "BMW"))),
        (
            "mark=%E6%AF%94%E4%BA%9A%E8%BF%AA",
            Box::new(move |o| eq(&o.mark, "比亚迪")),
        ),
        ("model=CAMRY", Box::new(move |o| eq_ci(&o.model, "Camry"))),
        (
            "mark=Audi&model=a6l",
            Box::new(move |o| eq_ci(&o.mark, "audi") && eq_ci(&o.model, "A6L")),
        ),
        (
            "year_from=2020",
            Box::new(|o| o.year.is_some_and(|y| y >= 2020)),
        ),
        (
            "year_to=2015",
            Box::new(|o| o.year.is_some_and(|y| y <= 2015)),
        ),
        (
            "year_from=2016&year_to=2018",
            Box::new(|o| o.year.is_some_and(|y| (2016..=2018).contains(&y))),
        ),
        (
            "price_from=150000",
            Box::new(|o| o.price.is_some_and(|p| p >= 150_000)),
        ),
        (
            "price_to=60000",
            Box::new(|o| o.price.is_some_and(|p| p <= 60_000)),
        ),
        (
            "km_age_to=50000",
            Box::new(|o| o.km_age.is_some_and(|k| k <= 50_000)),
        ),
        (
            "city=shenzhen",
            Box::new(move |o| eq_ci(&o.city, "Shenzhen")),
        ),
        (
            "city=%E5%8C%97%E4%BA%AC",
            Box::new(move |o| eq(&o.city, "北京")),
        ),
        ("body_type=SUV", Box::new(move |o| eq(&o.body_type, "SUV"))),
        (
            "engine_type=Electric",
            Box::new(move |o| eq(&o.engine_type, "Electric")),
        ),
        (
            "transmission_type=CVT",
            Box::new(move |o| eq(&o.transmission_type, "CVT")),
        ),
        (
            "drive_type=AWD",
            Box::new(move |o| eq(&o.drive_type, "AWD")),
        ),
        (
            "seller_type=private",
            Box::new(move |o| eq(&o.seller_type, "private")),
        ),
        ("is_dealer=true", Box::new(|o| o.is_dealer == Some(true))),
        ("is_dealer=false", Box::new(|o| o.is_dealer == Some(false))),
        (
            "mark=Toyota&price_to=150000&year_from=2015&engine_type=Gasoline",
            Box::new(move |o| {
                eq(&o.mark, "Toyota")
                    && o.price.is_some_and(|p| p <= 150_000)
                    && o.year.is_some_and(|y| y >= 2015)
                    && eq(&o.engine_type, "Gasoline")
            }),
        ),
    ];
    for (query, predicate) in cases {
        let matching: Vec<&Offer> = offers
            .iter()
            .filter(|o| o.is_active && predicate(o))
            .collect();
        assert!(
            !matching.is_empty(),
            "{query} matches nothing: a useless case"
        );
        for sort in ["price", "listed_at"] {
            let got = walk(
                &state,
                &token,
                &format!("{query}&sort={sort}&order=asc&limit=9"),
            )
            .await;
            assert_eq!(
                got,
                reference_order(&matching, sort, false),
                "{query} sort={sort}"
            );
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn walking_all_pages_returns_each_active_offer_once_even_with_inserts_between_pages(
    pool: PgPool,
) {
    let offers = generate(250, IDS, 4);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let mut later = generate(200, IDS + 1_000_000, 5).into_iter();
    for sort in ["price", "listed_at", "year"] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let uri = match &cursor {
                Some(c) => format!("/api/v1/offers?sort={sort}&limit=13&cursor={c}"),
                None => format!("/api/v1/offers?sort={sort}&limit=13"),
            };
            let answer = get(&state, &uri, &token).await;
            assert_eq!(answer.status, 200);
            seen.extend(answer.ids());
            // New offers arrive between pages.
            let batch: Vec<Offer> = later.by_ref().take(4).collect();
            insert(&pool, &batch).await;
            match answer.json()["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "an offer came twice (sort={sort})"
        );
        for offer in offers.iter().filter(|o| o.is_active) {
            assert!(
                unique.contains(&offer.inner_id),
                "{} missing (sort={sort})",
                offer.inner_id
            );
        }
        for offer in offers.iter().filter(|o| !o.is_active) {
            assert!(
                !unique.contains(&offer.inner_id),
                "inactive {} served",
                offer.inner_id
            );
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn one_offer_is_returned_whole_and_unknown_or_inactive_is_a_json_404(pool: PgPool) {
    let offers = generate(30, IDS, 6);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let active = offers.iter().find(|o| o.is_active).unwrap();
    let inactive = offers.iter().find(|o| !o.is_active).unwrap();
    let answer = get(
        &state,
        &format!("/api/v1/offers/{}", active.inner_id),
        &token,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), active.record());
    for id in [inactive.inner_id.as_str(), "999", "%E2%82%AC"] {
        let answer = get(&state, &format!("/api/v1/offers/{id}"), &token).await;
        assert_eq!(answer.status, 404, "{id}");
        assert_eq!(answer.error().0, "not_found");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_bad_parameter_is_a_400_naming_it(pool: PgPool) {
    let state = state(&pool);
    let token = token(&pool).await;
    let price_cursor = {
        insert(&pool, &generate(5, IDS, 7)).await;
        let answer = get(&state, "/api/v1/offers?sort=price&limit=1", &token).await;
        answer.json()["next_cursor"].as_str().unwrap().to_owned()
    };
    let cases = [
        ("year_from=abc", "year_from"),
        ("year_to=99999", "year_to"),
        ("price_from=-1", "price_from"),
        ("price_to=1e5", "price_to"),
        ("km_age_to=ten", "km_age_to"),
        ("is_dealer=maybe", "is_dealer"),
        ("sort=colour", "sort"),
        ("order=up", "order"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("colour=red", "colour"),
        ("mark=BMW&mark=Audi", "mark"),
    ];
    for (query, parameter) in cases {
        let answer = get(&state, &format!("/api/v1/offers?{query}"), &token).await;
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(
            answer.error(),
            ("invalid_parameter".into(), Some(parameter.into())),
            "{query}"
        );
    }
    // A cursor made for one sort is refused for another.
    let answer = get(
        &state,
        &format!("/api/v1/offers?sort=year&cursor={price_cursor}"),
        &token,
    )
    .await;
    assert_eq!(
        answer.error(),
        ("invalid_parameter".into(), Some("cursor".into()))
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn several_comma_separated_values_match_any_of_them(pool: PgPool) {
    let offers = generate(300, IDS, 9);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    fn any_ci(v: &Option<String>, wants: &[&str]) -> bool {
        v.as_deref()
            .is_some_and(|v| wants.iter().any(|w| w.to_lowercase() == v.to_lowercase()))
    }
    fn any(v: &Option<String>, wants: &[&str]) -> bool {
        v.as_deref().is_some_and(|v| wants.contains(&v))
    }
    type Pred = Box<dyn Fn(&Offer) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        (
            "mark=bmw,Audi",
            Box::new(|o| any_ci(&o.mark, &["BMW", "Audi"])),
        ),
        (
            "model=x5,%20camry",
            Box::new(|o| any_ci(&o.model, &["X5", "Camry"])),
        ),
        (
            "city=shenzhen,%E5%8C%97%E4%BA%AC",
            Box::new(|o| any_ci(&o.city, &["Shenzhen", "北京"])),
        ),
        (
            "body_type=SUV,MPV",
            Box::new(|o| any(&o.body_type, &["SUV", "MPV"])),
        ),
        (
            "engine_type=Electric,Hybrid",
            Box::new(|o| any(&o.engine_type, &["Electric", "Hybrid"])),
        ),
        (
            "transmission_type=CVT,Manual",
            Box::new(|o| any(&o.transmission_type, &["CVT", "Manual"])),
        ),
        (
            "drive_type=AWD,RWD",
            Box::new(|o| any(&o.drive_type, &["AWD", "RWD"])),
        ),
        (
            "seller_type=dealer,private",
            Box::new(|o| any(&o.seller_type, &["dealer", "private"])),
        ),
        (
            "mark=BMW,Audi&body_type=SUV,Sedan&year_from=2015",
            Box::new(|o| {
                any_ci(&o.mark, &["BMW", "Audi"])
                    && any(&o.body_type, &["SUV", "Sedan"])
                    && o.year.is_some_and(|y| y >= 2015)
            }),
        ),
    ];
    for (query, wanted) in cases {
        let matching: Vec<&Offer> = offers.iter().filter(|o| o.is_active && wanted(o)).collect();
        assert!(!matching.is_empty(), "{query}");
        let got = walk(&state, &token, &format!("{query}&limit=13")).await;
        assert_eq!(
            got,
            reference_order(&matching, "listed_at", true),
            "{query}"
        );
    }
}
