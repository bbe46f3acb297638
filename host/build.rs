// `sqlx::migrate!` embeds the migrations at build time; a new or changed
// migration must rebuild the host even when no Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
