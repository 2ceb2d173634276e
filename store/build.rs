//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds
//! the files of `migrations/` but tracks only those it has seen.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
