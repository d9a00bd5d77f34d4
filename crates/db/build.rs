//! `sqlx::migrate!` embeds /migrations at compile time; on stable Rust the
//! macro cannot tell cargo to watch the directory, so a changed or added
//! migration would leave a stale copy in every binary. This does.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
