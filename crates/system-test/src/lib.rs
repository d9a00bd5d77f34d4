//! carfeed's process-level system test lives in `tests/pipeline.rs`: the
//! real binaries (loader, normalizer, api) as separate processes, the
//! upstream simulator, Debian's nginx running the repo's `nginx/`
//! configuration, and one Postgres database, with the data checked after
//! every hop. No Docker: `scripts/compose-smoke.sh` covers the containers.
//!
//! The binaries are the ones `cargo build` put beside the test executable
//! (`scripts/test.sh` builds every target first). This crate has no code.
