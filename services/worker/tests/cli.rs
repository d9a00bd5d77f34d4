//! The `worker` binary as a user runs it: help, start-up checks, SIGTERM.

test_support::service_cli_tests!(env!("CARGO_BIN_EXE_worker"), ["run"], "worker ready");
