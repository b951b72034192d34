// `sqlx::migrate!` embeds migrations/ when this crate compiles; a migration added later must
// rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
