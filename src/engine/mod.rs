//! The pure per-patient engine (SPEC §3).
