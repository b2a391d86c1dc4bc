//! Answers kept for their TTL (at most 120 s), so that a flood of clients
//! asks the link once and not once each: one cache for the process,
//! shared by every rule's clients and sessions and by the prober, holding
//! at most 64 names. One question per name is on the link at a time:
//! whoever needs the name while it is being asked waits for that answer,
//! or that failure, instead of asking again. A failure is not kept: the
//! next one to need the name asks anew. How a name is asked is the
//! caller's (ask.rs in the product, a stand-in in the tests).

use std::io;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest an answer is kept, whatever its TTL.
pub const MAX_KEEP: Duration = Duration::from_secs(120);
/// Names kept at most.
const MAX_NAMES: usize = 64;
/// The longest anyone waits for someone else's question (which takes 4 s).
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// Names and what the link said of them.
pub struct Cache {
    names: Mutex<Vec<Entry>>,
    settled: Condvar,
}

struct Entry {
    name: String,
    state: State,
}

enum State {
    Asking,
    Known {
        addrs: Vec<SocketAddr>,
        until: Instant,
    },
    Failed(String),
}

/// The asking itself: the addresses for a name and how long they hold.
pub type Asked = io::Result<(Vec<SocketAddr>, Duration)>;

impl Cache {
    /// An empty cache.
    pub const fn new() -> Cache {
        Cache {
            names: Mutex::new(Vec::new()),
            settled: Condvar::new(),
        }
    }

    /// The addresses of `name`: kept ones while their TTL lasts, else the
    /// answer of the question already on the link, else `ask`'s.
    pub fn lookup(
        &self,
        name: &str,
        ask: impl FnOnce(&str) -> Asked,
    ) -> io::Result<Vec<SocketAddr>> {
        let deadline = Instant::now() + LONGEST_WAIT;
        let mut names = self.lock();
        let mut waited = false;
        loop {
            let now = Instant::now();
            let Some(at) = names.iter().position(|e| e.name == name) else {
                if !make_room(&mut names, now) {
                    drop(names);
                    return ask(name).map(|(addrs, _)| addrs);
                }
                names.push(Entry {
                    name: name.to_string(),
                    state: State::Asking,
                });
                break;
            };
            match &names[at].state {
                State::Known { addrs, until } if *until > now => return Ok(addrs.clone()),
                State::Asking => {
                    let Some(left) = deadline.checked_duration_since(now) else {
                        let e = format!("{name}: still being asked after 10 s");
                        return Err(io::Error::new(io::ErrorKind::TimedOut, e));
                    };
                    names = match self.settled.wait_timeout(names, left) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                    waited = true;
                }
                State::Failed(e) if waited => {
                    return Err(io::Error::new(io::ErrorKind::NotFound, e.clone()))
                }
                _ => {
                    names[at].state = State::Asking;
                    break;
                }
            }
        }
        drop(names);
        let asked = ask(name);
        let mut names = self.lock();
        if let Some(entry) = names.iter_mut().find(|e| e.name == name) {
            entry.state = match &asked {
                Ok((addrs, ttl)) => State::Known {
                    addrs: addrs.clone(),
                    until: Instant::now() + (*ttl).min(MAX_KEEP),
                },
                Err(e) => State::Failed(e.to_string()),
            };
        }
        self.settled.notify_all();
        asked.map(|(addrs, _)| addrs)
    }

    /// Drops what is kept of `name` (a connect to it failed: the host may
    /// have moved), so that the next lookup asks the link.
    pub fn forget(&self, name: &str) {
        let mut names = self.lock();
        names.retain(|e| e.name != name || matches!(e.state, State::Asking));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes room for one more name: drops an expired or failed one, else the
/// one kept the shortest; false when every name is being asked.
fn make_room(names: &mut Vec<Entry>, now: Instant) -> bool {
    if names.len() < MAX_NAMES {
        return true;
    }
    let ends = |e: &Entry| match e.state {
        State::Asking => None,
        State::Known { until, .. } => Some(until.max(now)),
        State::Failed(_) => Some(now),
    };
    let first_to_end = (0..names.len())
        .filter_map(|i| Some((ends(&names[i])?, i)))
        .min();
    first_to_end.map(|(_, i)| names.swap_remove(i)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    fn answer(last: &str, ttl: u64) -> Asked {
        Ok((
            vec![format!("10.0.0.{last}:0").parse().unwrap()],
            Duration::from_secs(ttl),
        ))
    }

    #[test]
    fn an_answer_is_kept_for_its_ttl_and_forgotten_on_demand() {
        let cache = Cache::new();
        let asked = AtomicUsize::new(0);
        let ask = |_: &str| {
            asked.fetch_add(1, Ordering::SeqCst);
            answer("2", 60)
        };
        for _ in 0..3 {
            assert_eq!(
                cache.lookup("far.local", ask).unwrap()[0].to_string(),
                "10.0.0.2:0"
            );
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        cache.forget("far.local");
        cache.lookup("far.local", ask).unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_answer_past_its_ttl_is_asked_again() {
        let cache = Cache::new();
        cache.lookup("far.local", |_| answer("2", 0)).unwrap();
        let again = cache.lookup("far.local", |_| answer("3", 0)).unwrap();
        assert_eq!(again[0].to_string(), "10.0.0.3:0");
    }

    #[test]
    fn those_who_come_while_a_name_is_asked_share_its_answer() {
        let cache = Cache::new();
        let asked = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let got = cache.lookup("far.local", |_| {
                        asked.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(200));
                        answer("2", 60)
                    });
                    assert_eq!(got.unwrap().len(), 1);
                });
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn those_who_waited_share_a_failure_and_the_next_asks_anew() {
        let cache = Cache::new();
        let asked = AtomicUsize::new(0);
        let fail = |_: &str| -> Asked {
            asked.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(200));
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no mDNS answer for far.local",
            ))
        };
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let e = cache.lookup("far.local", fail).unwrap_err();
                    assert_eq!(e.to_string(), "no mDNS answer for far.local");
                });
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert!(cache.lookup("far.local", |_| answer("2", 60)).is_ok());
    }

    #[test]
    fn the_cache_holds_at_most_its_bound_of_names() {
        let cache = Cache::new();
        for i in 0..MAX_NAMES + 10 {
            cache
                .lookup(&format!("host{i}.local"), |_| answer("2", 60))
                .unwrap();
        }
        assert_eq!(cache.lock().len(), MAX_NAMES);
    }
}
