//! The crate's one error type.

/// Everything that can go wrong in `gemini-transport`.
///
/// Variants are grouped by owner: decoding/encoding (`wire`) and connection (`connection`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame could not be decoded; `path` names the offending field (`$.setup.model`).
    #[error("cannot decode frame at `{path}`: {kind}")]
    Decode {
        /// JSON path of the offending field, `$` for the whole frame.
        path: String,
        /// What was wrong with it.
        kind: crate::wire::DecodeErrorKind,
    },
    /// Placeholder until the wire and connection modules add their variants.
    #[error("not implemented: {0}")]
    Unimplemented(&'static str),
}
