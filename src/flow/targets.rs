//! A rule's targets and the one walk over them, for stream connections and
//! UDP sessions alike. Each target's health is shared by every client of
//! the rule (health.rs): a client tries the up targets first, in --balance
//! order, then the down ones in the rule's order, so a dead target costs
//! one client a wait, not every client. Every try is counted here and
//! every change of health logged here, once. Down stream targets are tried
//! again by the prober (prober.rs) with the rule's probe; a down UDP target
//! by the next new session after its wait. How a target is tried is the
//! caller's (resolve.rs turns its name into addresses).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::counters::Counters;
use super::health::{now_ms, Down, TargetHealth};
use super::prober::{Probed, Prober};
use super::resolve::Rotation;
use crate::config::rule::{Rule, Target};
use crate::config::seconds::Secs;
use crate::config::Balance;

/// How a stream rule's down target is probed: a connect, closed at once.
pub type Probe = Box<dyn Fn(&Target, Rotation) -> io::Result<()> + Send + Sync>;

/// A rule's targets, their health and how a new client picks one.
pub struct Targets {
    rule: Rule,
    counters: Arc<Counters>,
    balance: Balance,
    health: Box<[TargetHealth]>,
    /// Round-robin: where the next client starts among the up targets.
    next: AtomicUsize,
    /// A stream rule's probe; None for a UDP rule, whose down targets the
    /// next new session tries again after their wait.
    probe: Option<Probe>,
}

impl Targets {
    /// The targets of `rule`, every one up, counted in `counters`; a rule
    /// with a probe is watched by the prober.
    pub fn new(
        rule: Rule,
        counters: Arc<Counters>,
        balance: Balance,
        probe: Option<Probe>,
    ) -> Arc<Targets> {
        let health = (0..rule.targets.len())
            .map(|_| TargetHealth::default())
            .collect();
        let watched = probe.is_some();
        let targets = Arc::new(Targets {
            rule,
            counters,
            balance,
            health,
            next: AtomicUsize::new(0),
            probe,
        });
        if watched {
            Prober::global().watch(Arc::clone(&targets) as Arc<dyn Probed>);
        }
        targets
    }

    /// The rule these are the targets of.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The rule's counters, which count every try of a target.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Where a new client starts: the first up target, or with round-robin
    /// one further along than the last client.
    pub fn start(&self) -> usize {
        match self.balance {
            Balance::First => 0,
            Balance::RoundRobin => self.next.fetch_add(1, Relaxed),
        }
    }

    /// One client's walk, from `start`: the targets up (or, for UDP, due a
    /// retry that this client takes) in --balance order, then every other
    /// in the rule's order, each at most once per client (`tried` keeps
    /// them, bit by index, across a UDP session's failovers). `attempt`
    /// is given the target and where to start among its addresses; the
    /// first success and its target's index, or None.
    pub fn walk<T>(
        &self,
        start: usize,
        tried: &mut u64,
        mut attempt: impl FnMut(&Target, Rotation) -> io::Result<T>,
    ) -> Option<(usize, T)> {
        let count = self.health.len();
        let first_pass = self.eligible() & !*tried;
        let skip = start % (first_pass.count_ones() as usize).max(1);
        let eligible = |i: &usize| first_pass & bit(*i) != 0;
        let first = (0..count).filter(eligible).nth(skip).unwrap_or(0);
        let rotated = (0..count).map(|k| (first + k) % count).filter(eligible);
        // The up ones from `first` on, then all in the rule's order.
        let order = rotated
            .map(|i| (i, true))
            .chain((0..count).map(|i| (i, false)));
        for (index, up) in order {
            let health = &self.health[index];
            let gone = up && !health.is_up() && !self.take_retry(health);
            if *tried & bit(index) != 0 || gone {
                continue;
            }
            *tried |= bit(index);
            if let Some(found) = self.try_one(index, &mut attempt) {
                return Some(found);
            }
        }
        None
    }

    /// The targets a client tries first, bit by index: those up, and for a
    /// UDP rule those whose retry is due (the clock read only for those).
    fn eligible(&self) -> u64 {
        let due = |h: &TargetHealth| {
            self.probe.is_none() && h.retry_at().is_some_and(|at| at <= now_ms())
        };
        let up = self.health.iter().map(|h| h.is_up() || due(h));
        up.enumerate()
            .fold(0, |mask, (i, up)| if up { mask | bit(i) } else { mask })
    }

    /// A UDP rule's down target, due again: this client takes the retry.
    fn take_retry(&self, health: &TargetHealth) -> bool {
        self.probe.is_none() && health.claim_retry()
    }

    fn try_one<T>(
        &self,
        index: usize,
        attempt: &mut impl FnMut(&Target, Rotation) -> io::Result<T>,
    ) -> Option<(usize, T)> {
        let (target, health) = (&self.rule.targets[index], &self.health[index]);
        let rotation = match self.balance {
            Balance::First => None,
            Balance::RoundRobin => Some(health.next_rotation()),
        };
        match attempt(target, rotation) {
            Ok(found) => {
                self.reached(index);
                Some((index, found))
            }
            Err(e) => {
                self.failed(index, format_args!("failed: {e}"));
                None
            }
        }
    }

    /// Target `index` was reached: counted, and up again for a stream rule
    /// (a UDP target is up again only once it answers: `answered`).
    fn reached(&self, index: usize) {
        self.counters.target_tried(index, true);
        if self.probe.is_some() {
            self.answered(index);
        }
    }

    /// Target `index` failed (`what` happened: "failed: E", or a UDP
    /// target's refusal): counted, and logged as a change if it went down.
    /// A failure of a UDP target already down doubles its wait; a stream
    /// target's wait is the prober's.
    pub fn failed(&self, index: usize, what: fmt::Arguments<'_>) {
        self.counters.target_tried(index, false);
        self.went_down(index, what, self.probe.is_none());
    }

    fn went_down(&self, index: usize, what: fmt::Arguments<'_>, retrying: bool) {
        let (rule, target) = (&self.rule, &self.rule.targets[index]);
        let again = self.probe.as_ref().map_or("trying", |_| "probing");
        let (level, state, wait) = match self.health[index].failed(retrying) {
            Down::Now(wait) => (log::Level::Warn, "down", wait),
            Down::Still(wait) => (log::Level::Debug, "still down", wait),
            Down::Already => return log::debug!("rule {rule}: target {target} {what}"),
        };
        let wait = Secs(wait);
        log::log!(
            level,
            "rule {rule}: target {target} {what}; {state}, {again} it again in {wait}"
        );
        if level == log::Level::Warn && self.probe.is_some() {
            Prober::global().kick();
        }
    }

    /// Target `index` answered: up again, said once.
    pub fn answered(&self, index: usize) {
        if let Some(down) = self.health[index].answered() {
            let (rule, target) = (&self.rule, &self.rule.targets[index]);
            log::info!(
                "rule {rule}: target {target} up again after {} down",
                Secs(down)
            );
        }
    }

    /// Each target and how long it has been down (None: up), in order.
    pub fn states(&self) -> impl Iterator<Item = (&Target, Option<Duration>)> {
        self.rule
            .targets
            .iter()
            .zip(self.health.iter().map(TargetHealth::down_for))
    }

    /// The down targets for a counters line: ", down: a:1 for 2.000s, ..."; empty when none is.
    pub fn down_summary(&self) -> String {
        let down: Vec<String> = self
            .states()
            .filter_map(|(target, down)| down.map(|d| format!("{target} for {}", Secs(d))))
            .collect();
        match down.is_empty() {
            true => String::new(),
            false => format!(", down: {}", down.join(", ")),
        }
    }
}

impl Probed for Targets {
    fn probe_due(&self, now: u64) -> Option<u64> {
        let probe = self.probe.as_ref()?;
        let mut next: Option<u64> = None;
        for (index, health) in self.health.iter().enumerate() {
            let Some(at) = health.retry_at() else {
                continue;
            };
            if at <= now {
                let target = &self.rule.targets[index];
                log::trace!("probing {target}");
                match probe(target, None) {
                    Ok(()) => self.reached(index),
                    Err(e) => {
                        self.counters.target_tried(index, false);
                        self.went_down(index, format_args!("failed a probe: {e}"), true);
                    }
                }
            }
            if let Some(at) = health.retry_at() {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }
}

fn bit(index: usize) -> u64 {
    1 << index
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rule::Source;

    fn targets(count: usize, balance: Balance) -> Arc<Targets> {
        let list: Vec<String> = (1..=count).map(|p| format!("127.0.0.1:{p}")).collect();
        let rule = Rule::parse(&format!("1:{}/udp", list.join(",")), Source::Argument(1)).unwrap();
        Targets::new(rule, Arc::new(Counters::new(count)), balance, None)
    }

    fn port(target: &Target) -> usize {
        match target {
            Target::Net { port, .. } => usize::from(*port) - 1,
            Target::Unix(_) => unreachable!("no unix targets here"),
        }
    }

    /// The order one client tries the targets in, every try failing.
    fn order(targets: &Targets, start: usize) -> Vec<usize> {
        let mut seen = Vec::new();
        let found: Option<(usize, ())> = targets.walk(start, &mut 0, |t, _| {
            seen.push(port(t));
            Err(io::ErrorKind::ConnectionRefused.into())
        });
        assert!(found.is_none());
        seen
    }

    /// The target a client that succeeds at once reaches.
    fn reached(targets: &Targets) -> usize {
        let walked = targets.walk(targets.start(), &mut 0, |t, _| Ok(port(t)));
        walked.expect("a target").1
    }

    #[test]
    fn every_target_is_tried_once_in_order_and_counted() {
        let t = targets(3, Balance::First);
        assert_eq!(order(&t, 0), [0, 1, 2]);
        let failed: Vec<u64> = t
            .counters()
            .read()
            .targets
            .iter()
            .map(|r| r.failed)
            .collect();
        assert_eq!(failed, [1, 1, 1]);
    }

    #[test]
    fn down_targets_come_after_the_up_ones_in_the_rule_s_order() {
        let t = targets(4, Balance::First);
        t.failed(0, format_args!("failed"));
        t.failed(2, format_args!("failed"));
        assert_eq!(order(&t, 0), [1, 3, 0, 2]);
        t.answered(2);
        // Every try failed, so all were down; 2 answered since.
        assert_eq!(order(&t, 0), [2, 0, 1, 3]);
    }

    #[test]
    fn round_robin_starts_one_further_along_among_the_up_targets() {
        let t = targets(3, Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| reached(&t)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        t.failed(1, format_args!("failed"));
        let picks: Vec<usize> = (0..4).map(|_| reached(&t)).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
    }

    #[test]
    fn a_client_tries_no_target_twice_across_its_walks() {
        let t = targets(3, Balance::First);
        let mut tried = 0;
        let first = t.walk(0, &mut tried, |tgt, _| Ok(port(tgt)));
        assert_eq!(first.map(|f| f.0), Some(0));
        let mut seen = Vec::new();
        let next: Option<(usize, ())> = t.walk(0, &mut tried, |tgt, _| {
            seen.push(port(tgt));
            Err(io::ErrorKind::ConnectionRefused.into())
        });
        assert!(next.is_none());
        assert_eq!(
            seen,
            [1, 2],
            "the failover goes on from the targets not tried"
        );
    }

    #[test]
    fn the_counters_line_names_the_targets_down() {
        let t = targets(2, Balance::First);
        assert_eq!(t.down_summary(), "");
        t.failed(1, format_args!("failed"));
        assert!(t.down_summary().starts_with(", down: 127.0.0.1:2 for "));
    }
}
