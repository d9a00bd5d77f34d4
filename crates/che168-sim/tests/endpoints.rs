//! Every endpoint over real HTTP: shapes, errors, the key and unknown paths.

mod support;

use std::collections::HashSet;

use che168_sim::{ChangeKind, Origin};
use support::{get, get_raw, small_config, start};

#[tokio::test]
async fn offers_page_has_twenty_items_and_a_next_page() {
    let sim = start(small_config()).await;
    let page = get(&sim, "/offers?page=1").await;
    assert_eq!(page.status, 200);
    let body = page.json();
    assert_eq!(body["result"].as_array().unwrap().len(), 20);
    assert_eq!(
        body["meta"],
        serde_json::json!({"page": 1, "next_page": 2, "limit": 20})
    );
    let first = &body["result"][0];
    assert_eq!(first["change_type"], "added");
    assert!(first["id"].is_u64());
    assert_eq!(first["inner_id"], first["data"]["inner_id"]);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body, sim.catalogue().offers_page(1));
}

#[tokio::test]
async fn offers_without_a_page_is_page_one_and_a_bad_page_is_a_400() {
    let sim = start(small_config()).await;
    assert_eq!(
        get(&sim, "/offers").await.json(),
        sim.catalogue().offers_page(1)
    );
    for bad in ["0", "-1", "x"] {
        let answer = get(&sim, &format!("/offers?page={bad}")).await;
        assert_eq!(answer.status, 400, "page={bad}");
        assert!(answer.json()["message"].is_string());
    }
}

#[tokio::test]
async fn paging_to_the_end_covers_every_listing_once_in_inner_id_order() {
    let config = small_config();
    let sim = start(config.clone()).await;
    let mut inner_ids = Vec::new();
    let mut page = 1u64;
    loop {
        let body = get(&sim, &format!("/offers?page={page}")).await.json();
        for item in body["result"].as_array().unwrap() {
            inner_ids.push(item["inner_id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        match body["meta"]["next_page"].as_u64() {
            Some(next) => {
                assert_eq!(next, page + 1);
                page = next;
            }
            None => break,
        }
    }
    assert_eq!(page, 52);
    assert_eq!(inner_ids.len(), config.listings);
    assert!(
        inner_ids.windows(2).all(|w| w[0] < w[1]),
        "inner_ids strictly increase"
    );
    let past_end = get(&sim, "/offers?page=53").await.json();
    assert_eq!(past_end["result"].as_array().unwrap().len(), 0);
    assert!(past_end["meta"]["next_page"].is_null());
    assert_eq!(sim.requests("offers"), 53);
}

#[tokio::test]
async fn change_id_gives_the_first_change_of_each_day_and_404_outside_them() {
    let sim = start(small_config()).await;
    let cat = sim.catalogue();
    let first = get(&sim, "/change_id?date=2026-08-18").await.json()["change_id"]
        .as_u64()
        .unwrap();
    let second = get(&sim, "/change_id?date=2026-08-19").await.json()["change_id"]
        .as_u64()
        .unwrap();
    let third = get(&sim, "/change_id?date=2026-08-20").await.json()["change_id"]
        .as_u64()
        .unwrap();
    assert_eq!(first, cat.first_change_id());
    assert_eq!(second, first + 400);
    assert_eq!(third, second + 400);
    assert_eq!(Some(third), cat.change_id_of(cat.today()));
    for outside in ["2026-08-17", "2026-08-21"] {
        let answer = get(&sim, &format!("/change_id?date={outside}")).await;
        assert_eq!(answer.status, 404, "{outside}");
        assert!(answer.json()["message"].is_string());
    }
    assert_eq!(get(&sim, "/change_id?date=18.08.2026").await.status, 400);
}

#[tokio::test]
async fn changes_walk_contiguously_through_every_day_to_the_tip() {
    let sim = start(small_config()).await;
    let mut cursor = get(&sim, "/change_id?date=2026-08-18").await.json()["change_id"]
        .as_u64()
        .unwrap();
    let mut ids = Vec::new();
    loop {
        let body = get(&sim, &format!("/changes?change_id={cursor}"))
            .await
            .json();
        assert_eq!(body["meta"]["cur_change_id"], cursor);
        assert_eq!(body["meta"]["limit"], 20);
        let result = body["result"].as_array().unwrap();
        let Some(next) = body["meta"]["next_change_id"].as_u64() else {
            assert!(result.is_empty(), "the tip has no events");
            break;
        };
        let last = result.last().unwrap()["id"].as_u64().unwrap();
        assert_eq!(next, last + 1);
        ids.extend(result.iter().map(|e| e["id"].as_u64().unwrap()));
        cursor = next;
    }
    assert_eq!(ids.len(), 3 * 400);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(cursor, sim.catalogue().tip_change_id());
}

#[tokio::test]
async fn changes_pages_match_the_catalogue_events() {
    let sim = start(small_config()).await;
    let cat = sim.catalogue();
    let start_id = cat.change_id_of(cat.first_day()).unwrap() + 40;
    let body = get(&sim, &format!("/changes?change_id={start_id}"))
        .await
        .json();
    let expected: Vec<_> = cat.changes(0)[40..60]
        .iter()
        .map(|e| e.to_value())
        .collect();
    assert_eq!(body["result"].as_array().unwrap(), &expected);
    assert_eq!(get(&sim, "/changes?change_id=abc").await.status, 400);
}

#[tokio::test]
async fn offer_serves_three_shapes_and_404_for_unknown_or_removed_listings() {
    let sim = start(small_config()).await;
    let cat = sim.catalogue();
    let mut shapes = HashSet::new();
    for index in 0..60u64 {
        let inner_id = cat.inner_id(index);
        let answer = get(&sim, &format!("/offer?inner_id={inner_id}")).await;
        let Some(expected) = cat.current_listing(&inner_id) else {
            assert_eq!(answer.status, 404);
            continue;
        };
        assert_eq!(answer.status, 200);
        let body = answer.json();
        let data = if body.get("meta").is_some() {
            shapes.insert("list");
            assert_eq!(body["result"][0]["inner_id"], inner_id.as_str());
            body["result"][0]["data"].clone()
        } else if body.get("result").is_some() {
            shapes.insert("wrapped");
            body["result"].clone()
        } else {
            shapes.insert("bare");
            body
        };
        assert_eq!(data, expected);
    }
    assert_eq!(shapes.len(), 3, "all three shapes appear: {shapes:?}");

    let unknown = get(&sim, "/offer?inner_id=123").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["message"].is_string());

    let removed = (0..cat.days())
        .flat_map(|day| cat.changes(day))
        .find(|e| e.change_type == ChangeKind::Removed && matches!(e.origin, Origin::Catalogue(_)))
        .expect("some catalogue listing is removed");
    assert_eq!(
        get(&sim, &format!("/offer?inner_id={}", removed.inner_id))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn offer_shows_the_latest_price_of_a_changed_listing() {
    let sim = start(small_config()).await;
    let cat = sim.catalogue();
    let events: Vec<_> = (0..cat.days()).flat_map(|day| cat.changes(day)).collect();
    let changed = events
        .iter()
        .rev()
        .find(|e| {
            e.change_type == ChangeKind::Changed
                && matches!(e.origin, Origin::Catalogue(_))
                && !events
                    .iter()
                    .any(|o| o.inner_id == e.inner_id && o.change_type == ChangeKind::Removed)
        })
        .expect("a changed, never removed catalogue listing");
    let data = changed.data().unwrap();
    let current = cat.current_listing(&changed.inner_id).unwrap();
    assert_eq!(current["price"], data["new_price"]);
}

#[tokio::test]
async fn filters_lists_the_vocabulary_of_the_listings() {
    let sim = start(small_config()).await;
    let body = get(&sim, "/filters").await.json();
    let marks = body["mark"].as_object().unwrap();
    for mark in ["Volkswagen", "Toyota", "BYD", "Denza", "Zeekr", "Hongqi"] {
        assert!(
            !marks[mark]["model"].as_array().unwrap().is_empty(),
            "{mark}"
        );
    }
    for key in [
        "transmission_type",
        "color",
        "body_type",
        "engine_type",
        "drive_type",
    ] {
        assert!(!body[key].as_array().unwrap().is_empty(), "{key}");
    }
    let listing = sim.catalogue().listing(3);
    let models = marks[listing["mark"].as_str().unwrap()]["model"]
        .as_array()
        .unwrap();
    assert!(models.contains(&listing["model"]));
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_a_401_with_a_json_message() {
    let sim = start(small_config()).await;
    for url in [
        format!("{}/offers?page=1&api_key=nope", sim.base_url()),
        format!("{}/offers?page=1", sim.base_url()),
        format!("{}/changes?change_id=1", sim.base_url()),
    ] {
        let answer = get_raw(&url).await;
        assert_eq!(answer.status, 401);
        assert!(answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("api_key"));
    }
}

#[tokio::test]
async fn an_unknown_path_is_an_html_404_page() {
    let sim = start(small_config()).await;
    for url in [
        format!("http://{}/", sim.addr()),
        format!("{}/nothing?api_key=test-key", sim.base_url()),
        format!("http://{}/api/v2/encar/offers?page=1", sim.addr()),
    ] {
        let answer = get_raw(&url).await;
        assert_eq!(answer.status, 404);
        assert!(answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(answer.text().contains("<html>"));
        assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_err());
    }
    assert_eq!(sim.requests("other"), 3);
}
