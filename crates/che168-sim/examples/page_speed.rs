//! How fast the simulator makes `/offers` pages, alone and over HTTP.
//!
//! `cargo run --release -p che168-sim --example page_speed [PAGES]`
//! (default 2,000 pages of the default 250,000-listing catalogue).

use std::time::Instant;

use che168_sim::SimConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pages: u32 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(2_000);
    let config = SimConfig::default();
    let catalogue = config.catalogue();

    let started = Instant::now();
    let mut bytes = 0usize;
    for page in 1..=pages {
        bytes += catalogue.offers_page_body(page).len();
    }
    let generate = started.elapsed();
    println!(
        "generate: {pages} pages in {:.2?} = {:.3} ms/page, {:.1} KB/page",
        generate,
        generate.as_secs_f64() * 1000.0 / f64::from(pages),
        bytes as f64 / f64::from(pages) / 1024.0
    );

    let started = Instant::now();
    let online = catalogue.current_listing(&catalogue.inner_id(0)).is_some();
    println!(
        "offer:    first /offer lookup (indexes {} days of {} changes) in {:.2?}; listing 0 online: {online}",
        catalogue.days(),
        catalogue.changes_per_day(),
        started.elapsed()
    );
    let started = Instant::now();
    let events: usize = (0..catalogue.days())
        .map(|day| catalogue.changes(day).len())
        .sum();
    println!(
        "changes:  {events} events generated in {:.2?}",
        started.elapsed()
    );

    let sim = che168_sim::spawn(config.clone()).await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for page in 1..=pages {
        let url = format!(
            "{}/offers?page={page}&api_key={}",
            sim.base_url(),
            config.api_key
        );
        let body = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        anyhow::ensure!(!body.is_empty(), "page {page} is empty");
    }
    let http = started.elapsed();
    println!(
        "http:     {pages} pages in {:.2?} = {:.3} ms/page ({:.0} pages/s, one connection)",
        http,
        http.as_secs_f64() * 1000.0 / f64::from(pages),
        f64::from(pages) / http.as_secs_f64()
    );
    sim.shutdown().await;
    Ok(())
}
