//! Prometheus' text exposition format 0.0.4, pure: the families of
//! /metrics from plain readings (each rule's counters, the process's
//! figures), every family with its `# HELP` and `# TYPE`, label values
//! escaped. Reading the figures is process.rs's and metrics.rs's business.

use std::fmt::Write;

use crate::flow::counters::Reading;

/// One rule's reading: the rule as --check prints it, its targets as the
/// rule writes them with whether each is up, and its counters.
pub struct RuleReading {
    pub rule: String,
    pub targets: Vec<(String, bool)>,
    pub reading: Reading,
}

/// The process's own figures, as Prometheus' client libraries export them.
/// Times are in hundredths of a second (what /proc counts in), so that no
/// float code is needed to print them (it would add tens of KB).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Process {
    pub cpu_centis: u64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_centis: u64,
    pub threads: u64,
}

/// Hundredths as decimal seconds: 150 -> "1.50".
fn seconds(centis: u64) -> String {
    format!("{}.{:02}", centis / 100, centis % 100)
}

/// A label value with `\`, `"` and newlines escaped (the format's rules).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The whole /metrics page.
pub fn render(rules: &[RuleReading], process: &Process, version: &str) -> String {
    let mut out = String::with_capacity(512 + rules.len() * 1024);
    family(
        &mut out,
        "ambassador_connections_open",
        "gauge",
        "Connections open now (UDP rules: sessions).",
    );
    for r in rules {
        sample(
            &mut out,
            "ambassador_connections_open",
            &[("rule", &r.rule)],
            r.reading.open,
        );
    }
    family(
        &mut out,
        "ambassador_connections_total",
        "counter",
        "Clients since the start, by what became of them.",
    );
    for r in rules {
        let c = &r.reading;
        for (outcome, n) in [
            ("served", c.served),
            ("denied", c.denied),
            ("no_target", c.no_target),
            ("over_cap", c.over_cap),
            ("bad_header", c.bad_header),
        ] {
            let labels = [("rule", r.rule.as_str()), ("outcome", outcome)];
            sample(&mut out, "ambassador_connections_total", &labels, n);
        }
    }
    family(
        &mut out,
        "ambassador_bytes_total",
        "counter",
        "Bytes delivered: up is client to target, down target to client.",
    );
    for r in rules {
        for (direction, n) in [("up", r.reading.bytes.up), ("down", r.reading.bytes.down)] {
            let labels = [("rule", r.rule.as_str()), ("direction", direction)];
            sample(&mut out, "ambassador_bytes_total", &labels, n);
        }
    }
    family(
        &mut out,
        "ambassador_target_connects_total",
        "counter",
        "Tries of each target of a rule's failover list, by result.",
    );
    for r in rules {
        for ((target, _), t) in r.targets.iter().zip(&r.reading.targets) {
            for (result, n) in [("ok", t.ok), ("failed", t.failed)] {
                let labels = [
                    ("rule", r.rule.as_str()),
                    ("target", target),
                    ("result", result),
                ];
                sample(&mut out, "ambassador_target_connects_total", &labels, n);
            }
        }
    }
    family(
        &mut out,
        "ambassador_target_up",
        "gauge",
        "Whether each target of a rule is up (1) or found down (0).",
    );
    for r in rules {
        for (target, up) in &r.targets {
            let labels = [("rule", r.rule.as_str()), ("target", target.as_str())];
            sample(&mut out, "ambassador_target_up", &labels, u64::from(*up));
        }
    }
    render_process(&mut out, process, version);
    out
}

fn render_process(out: &mut String, p: &Process, version: &str) {
    let plain: [(&str, &str, &str, String); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            seconds(p.cpu_centis),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            p.resident_bytes.to_string(),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            p.open_fds.to_string(),
        ),
        (
            "process_max_fds",
            "gauge",
            "The most file descriptors the process may open.",
            p.max_fds.to_string(),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "When the process started, in seconds since the epoch.",
            seconds(p.start_time_centis),
        ),
        (
            "ambassador_threads",
            "gauge",
            "Threads of the process.",
            p.threads.to_string(),
        ),
    ];
    for (name, kind, help, value) in plain {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        out,
        "ambassador_build_info",
        "gauge",
        "The running version; always 1.",
    );
    sample(out, "ambassador_build_info", &[("version", version)], 1);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    out.push('{');
    for (i, (key, v)) in labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{key}=\"{}\"", escape(v));
    }
    let _ = writeln!(out, "}} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::counters::TargetReading;
    use crate::flow::PerDirection;

    fn reading(rule: &str, targets: &[&str]) -> RuleReading {
        RuleReading {
            rule: rule.to_string(),
            targets: targets
                .iter()
                .map(|t| (t.to_string(), *t != "backup:6379"))
                .collect(),
            reading: Reading {
                open: 2,
                served: 10,
                denied: 3,
                no_target: 1,
                over_cap: 0,
                bad_header: 4,
                bytes: PerDirection {
                    up: 1000,
                    down: 2000,
                },
                targets: vec![TargetReading { ok: 9, failed: 1 }; targets.len()],
            },
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"unix:/tmp/a"b\c"#), r#"unix:/tmp/a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("0.0.0.0:6379:redis:6379"), "0.0.0.0:6379:redis:6379");
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let text = render(
            &[
                reading("0.0.0.0:1:a:1", &["a:1"]),
                reading("0.0.0.0:2:b:2", &["b:2"]),
            ],
            &Process::default(),
            "0.1.0",
        );
        for family in [
            "ambassador_connections_open",
            "ambassador_connections_total",
            "ambassador_bytes_total",
            "ambassador_target_connects_total",
            "ambassador_target_up",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "ambassador_threads",
            "ambassador_build_info",
        ] {
            assert_eq!(
                text.matches(&format!("# HELP {family} ")).count(),
                1,
                "{family}"
            );
            assert_eq!(
                text.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}"
            );
        }
        assert!(
            text.ends_with("ambassador_build_info{version=\"0.1.0\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn samples_carry_the_rule_and_their_labels() {
        let text = render(
            &[reading(
                "unix:/run/\"x\".sock:redis:6379,backup:6379",
                &["redis:6379", "backup:6379"],
            )],
            &Process {
                cpu_centis: 150,
                resident_bytes: 4096,
                open_fds: 7,
                max_fds: 1024,
                start_time_centis: 170_000_000_025,
                threads: 3,
            },
            "0.1.0",
        );
        let rule = r#"rule="unix:/run/\"x\".sock:redis:6379,backup:6379""#;
        for line in [
            format!("ambassador_connections_open{{{rule}}} 2"),
            format!("ambassador_connections_total{{{rule},outcome=\"served\"}} 10"),
            format!("ambassador_connections_total{{{rule},outcome=\"bad_header\"}} 4"),
            format!("ambassador_bytes_total{{{rule},direction=\"down\"}} 2000"),
            format!("ambassador_target_connects_total{{{rule},target=\"backup:6379\",result=\"failed\"}} 1"),
            format!("ambassador_target_up{{{rule},target=\"redis:6379\"}} 1"),
            format!("ambassador_target_up{{{rule},target=\"backup:6379\"}} 0"),
            "process_cpu_seconds_total 1.50".to_string(),
            "process_start_time_seconds 1700000000.25".to_string(),
            "process_max_fds 1024".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
