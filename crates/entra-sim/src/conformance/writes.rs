//! Writes (graph-facts §3–§6).
