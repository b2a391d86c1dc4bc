//! The one prober thread of the process: it tries the down targets of
//! stream rules again when each is due, and sleeps on a condition variable
//! the rest of the time; with nothing down it has no deadline at all, so
//! it does not wake. It starts the first time a target goes down (a
//! process whose targets all answer never has it). What a probe is (a
//! connect, a PROXY health-check header) and what its outcome changes are
//! the watched rules' business (targets.rs): this file only keeps time.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use super::health::now_ms;
use super::pool::STACK_SIZE;

/// A rule whose down targets the prober tries again.
pub trait Probed: Send + Sync {
    /// Probes each target due at `now` (health clock); returns when the
    /// next is due, or None when nothing is down.
    fn probe_due(&self, now: u64) -> Option<u64>;
}

/// The watched rules and the prober's wake-up.
pub struct Prober {
    watched: Mutex<Vec<Arc<dyn Probed>>>,
    /// Set when a target went down: the prober looks again before sleeping.
    kicked: Mutex<bool>,
    wake: Condvar,
    started: OnceLock<()>,
}

impl Prober {
    /// The process's prober.
    pub fn global() -> &'static Prober {
        static PROBER: OnceLock<Prober> = OnceLock::new();
        PROBER.get_or_init(|| Prober {
            watched: Mutex::new(Vec::new()),
            kicked: Mutex::new(false),
            wake: Condvar::new(),
            started: OnceLock::new(),
        })
    }

    /// Watches a rule's targets from now on.
    pub fn watch(&self, rule: Arc<dyn Probed>) {
        lock(&self.watched).push(rule);
    }

    /// A target went down: the prober looks at the times again, starting
    /// its thread the first time.
    pub fn kick(&'static self) {
        *lock(&self.kicked) = true;
        self.wake.notify_one();
        self.started.get_or_init(|| {
            let spawned = thread::Builder::new()
                .name("prober".into())
                .stack_size(STACK_SIZE)
                .spawn(move || self.run());
            if let Err(e) = spawned {
                // Down targets are then tried again by clients only, when all are down.
                log::warn!("cannot start the prober thread: {e}");
            }
        });
    }

    fn run(&self) {
        loop {
            *lock(&self.kicked) = false;
            let rules: Vec<Arc<dyn Probed>> = lock(&self.watched).clone();
            let next = rules.iter().filter_map(|r| r.probe_due(now_ms())).min();
            let kicked = lock(&self.kicked);
            if *kicked {
                continue;
            }
            // Woken by a kick or the deadline; a poisoned lock only means a
            // holder panicked, and the flag is still a flag.
            match next {
                None => drop(self.wake.wait_while(kicked, |k| !*k)),
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    drop(self.wake.wait_timeout_while(kicked, wait, |k| !*k));
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data under these locks: usable even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
