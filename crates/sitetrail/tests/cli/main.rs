//! sitetrail's command line, tested as the built binary.
//!
//! `commands` and `verify` run on every `cargo test`. The reliability suites (`crash`,
//! `load`) are ignored by default and slow; `scripts/reliability.sh` runs them, and they
//! write their figures under `test-output/reliability/`.

mod commands;
mod crash;
mod demo_claims;
mod exit_codes;
mod live;
mod load;
mod own_user;
mod safe_push;
mod support;
mod verify;
