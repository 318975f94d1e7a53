//! Diff benchmarks.
fn main() {}
