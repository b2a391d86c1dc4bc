// The product's parsing modules, compiled into each fuzz target as they are
// (the product is a binary crate, so there is no library to link).
// Included (include!) at the root of each target, so `crate::` paths resolve.

#[path = "../../src/allow.rs"]
pub mod allow;
#[path = "../../src/cli.rs"]
pub mod cli;
#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/env.rs"]
pub mod env;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/rule.rs"]
pub mod rule;
#[path = "../../src/seconds.rs"]
pub mod seconds;
