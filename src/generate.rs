//! Synthetic, realistic data sets (`rac generate`).
