//! `resume-policy`: placeholder, filled by its issue.
