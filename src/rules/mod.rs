//! The dated parameters of RULES.md, loaded from data.
