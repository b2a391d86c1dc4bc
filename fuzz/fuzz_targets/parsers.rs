// The product's first stage (config/: the command line, link variables, the
// RULE syntax, ranges and durations) and its error type, compiled into each
// fuzz target as they are (the product is a binary crate, so there is no
// library to link). Included (include!) at the root of each target, so
// `crate::config` and `crate::error` resolve as in the product; config/mod.rs
// brings its own submodules from its folder.

#[path = "../../src/config/mod.rs"]
pub mod config;
#[path = "../../src/error.rs"]
pub mod error;
