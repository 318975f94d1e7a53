//! `gemini-fake`: placeholder, filled by its issue.
