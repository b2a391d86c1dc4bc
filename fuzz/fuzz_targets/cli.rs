//! The whole command line (arguments split on NUL) and a small environment,
//! through getopts and config building, as main does it.
#![no_main]
#![allow(dead_code)]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

include!("parsers.rs");

fuzz_target!(|data: &[u8]| {
    let (args, vars) = match data.iter().position(|b| *b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let args: Vec<OsString> = args
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned().into())
        .collect();
    let vars: Vec<(String, String)> = String::from_utf8_lossy(vars)
        .split('\n')
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let Ok(parsed) = config::cli::parse(&args) else {
        return;
    };
    match config::build(&parsed, &vars) {
        Ok(c) => assert!(!c.rules.is_empty() && c.max_conns >= 1),
        Err(e) => assert!(matches!(e.exit_code(), 1 | 2)),
    }
});
