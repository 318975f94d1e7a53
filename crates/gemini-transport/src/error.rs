//! The crate's one error type.

/// Everything that can go wrong in `gemini-transport`.
///
/// Variants are grouped by owner: decoding/encoding (`wire`) and connection (`connection`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder until the wire and connection modules add their variants.
    #[error("not implemented: {0}")]
    Unimplemented(&'static str),
}
