//! Threads, reused: the accepting threads of stream rules, the copiers of
//! their connections and the reply threads of UDP sessions all run here. A
//! finished job's thread parks for a while and the next job wakes it
//! instead of creating a thread (clone, stack mmap, guard page, signal
//! stack) and destroying it again. Parked threads that see no work for
//! `PARK_TIME` exit, so an ambassador that goes quiet gives its threads back.
//!
//! The pool knows nothing about sockets: it runs boxed jobs. A job that
//! knows its thread will not be needed again (an accepting thread leaving a
//! quiet listener) calls `retire`, and the thread exits when the job ends.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

/// Stack size of every pooled thread. The copy buffer lives on the heap; a
/// copier needs a few frames, and name resolution a few pages more.
pub const STACK_SIZE: usize = 64 * 1024;

/// How long a thread with no work stays parked before it exits.
pub const PARK_TIME: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    /// Jobs handed to parked threads, not yet picked up.
    jobs: VecDeque<Job>,
    /// Parked threads that no job has been promised to.
    idle: usize,
}

/// A set of parked threads; `Pool::global()` is the one the server uses.
pub struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
            }),
            work: Condvar::new(),
        }
    }

    /// The process's pool.
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::new)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs never run under this lock, so it cannot be poisoned by one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` on a parked thread, or on a new one if none is parked. The
    /// error is that of thread creation; the job is dropped then.
    pub fn run(&'static self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let job: Job = Box::new(job);
        {
            let mut state = self.lock();
            if state.idle > 0 {
                state.idle -= 1;
                state.jobs.push_back(job);
                drop(state);
                self.work.notify_one();
                return Ok(());
            }
        }
        thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || worker(self, job))
            .map(drop)
    }
}

thread_local! {
    static RETIRING: Cell<bool> = const { Cell::new(false) };
}

/// Ends the current pooled thread once its job returns, instead of parking
/// it for the next job.
pub fn retire() {
    RETIRING.with(|r| r.set(true));
}

fn worker(pool: &'static Pool, first: Job) {
    let mut job = first;
    loop {
        job();
        if RETIRING.with(|r| r.get()) {
            return;
        }
        let mut state = pool.lock();
        state.idle += 1;
        job = loop {
            if let Some(next) = state.jobs.pop_front() {
                break next;
            }
            let (next, timeout) = pool
                .work
                .wait_timeout(state, PARK_TIME)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            // Every queued job was promised to some parked thread: with the
            // queue empty, no promise is outstanding for this one.
            if timeout.timed_out() && state.jobs.is_empty() {
                state.idle -= 1;
                return;
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn fresh() -> &'static Pool {
        Box::leak(Box::new(Pool::new()))
    }

    fn parked(pool: &Pool) -> usize {
        pool.lock().idle
    }

    /// Polls `done` every millisecond for up to 10 s; true once it holds.
    fn within_10s(mut done: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
        true
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_finished_thread_runs_the_next_job() {
        let pool = fresh();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        pool.run(move || tx.send(thread::current().id()).unwrap())
            .unwrap();
        let first = rx.recv_timeout(WAIT).unwrap();
        assert!(within_10s(|| parked(pool) == 1), "the thread parked");
        pool.run(move || tx2.send(thread::current().id()).unwrap())
            .unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), first);
    }

    #[test]
    fn parked_threads_exit_after_the_park_time() {
        let pool = fresh();
        pool.run(|| ()).unwrap();
        assert!(within_10s(|| parked(pool) == 1), "the thread parked");
        // It leaves once PARK_TIME passes with no job: waited for, not slept for.
        assert!(within_10s(|| parked(pool) == 0), "the parked thread left");
    }

    #[test]
    fn a_retiring_thread_exits_instead_of_parking() {
        // Sends when the thread's locals are destroyed: when it exits.
        struct OnExit(mpsc::Sender<()>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
        }
        let pool = fresh();
        let (tx, rx) = mpsc::channel();
        pool.run(move || {
            ON_EXIT.with(|e| *e.borrow_mut() = Some(OnExit(tx)));
            retire();
        })
        .unwrap();
        // Well before PARK_TIME, after which a parked thread would exit too.
        rx.recv_timeout(PARK_TIME / 2)
            .expect("the retired thread exited");
        assert_eq!(parked(pool), 0);
    }

    #[test]
    fn many_jobs_at_once_all_run() {
        let pool = fresh();
        let (tx, rx) = mpsc::channel();
        for i in 0..64 {
            let tx = tx.clone();
            pool.run(move || {
                thread::sleep(Duration::from_millis(5));
                tx.send(i).unwrap();
            })
            .unwrap();
        }
        let mut got: Vec<i32> = (0..64).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
    }
}
