//! Writers of the outputs of SPEC §4, written atomically into `--out`.
