//! The `che168-sim` binary: help, serving, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_che168-sim");

#[test]
fn help_lists_the_serve_subcommand_and_its_fault_flags() {
    let top = Command::new(BIN).arg("--help").output().unwrap();
    assert!(top.status.success());
    assert!(String::from_utf8_lossy(&top.stdout).contains("serve"));
    let serve = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--bind",
        "--seed",
        "--listings",
        "--api-key",
        "--days",
        "--changes-per-day",
        "--latency",
        "--error-rate",
        "--rate-limit-rate",
        "--truncated-rate",
        "--reset-rate",
        "--timeout-rate",
        "--empty-tip",
        "--next-page-zero",
    ] {
        assert!(text.contains(flag), "serve --help mentions {flag}");
    }
}

#[tokio::test]
async fn serve_answers_requests_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--listings",
            "100",
            "--api-key",
            "k",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("[INFO] Simulating 100 listings"),
        "{first}"
    );
    let base = first.rsplit("base URL ").next().unwrap().trim().to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api/v2/che168"),
        "{base}"
    );

    let body = reqwest::get(format!("{base}/offers?page=5&api_key=k"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        page["meta"]["next_page"].is_null(),
        "page 5 of 100 listings is the last"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the simulator stops within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = stdout.lines().map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("Received SIGTERM")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("Simulator stopped")),
        "{rest:?}"
    );
}
