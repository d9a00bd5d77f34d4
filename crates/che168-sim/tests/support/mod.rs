//! Helpers shared by the simulator's tests: a small config and a plain GET.
#![allow(dead_code)]

use che168_sim::{Faults, RunningSim, SimConfig};
use chrono::NaiveDate;

pub const KEY: &str = "test-key";

/// A small world: 1,030 listings (52 pages, the last one short), three days
/// of 400 changes from 2026-08-18.
pub fn small_config() -> SimConfig {
    SimConfig {
        seed: 7,
        listings: 1_030,
        api_key: KEY.to_owned(),
        first_day: NaiveDate::from_ymd_opt(2026, 8, 18).unwrap(),
        days: 3,
        changes_per_day: 400,
        faults: Faults::default(),
    }
}

pub async fn start(config: SimConfig) -> RunningSim {
    che168_sim::spawn(config)
        .await
        .expect("the simulator starts")
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `<base_url><path_and_query>` with the test key appended.
pub async fn get(sim: &RunningSim, path_and_query: &str) -> Answer {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    get_raw(&format!(
        "{}{path_and_query}{sep}api_key={KEY}",
        sim.base_url()
    ))
    .await
}

pub async fn get_raw(url: &str) -> Answer {
    let response = reqwest::get(url).await.expect("the request gets an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the body arrives").to_vec();
    Answer {
        status,
        headers,
        body,
    }
}
