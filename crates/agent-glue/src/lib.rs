//! `agent-glue`: placeholder, filled by its issue.
