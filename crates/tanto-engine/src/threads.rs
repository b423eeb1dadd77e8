//! Thread pools for inference.
//!
//! * [`SpinPool`]: a small fixed team of threads that run one forward pass in
//!   lock-step (each thread takes its share of every operation, with a spin barrier
//!   between dependent steps), as llama.cpp/ggml does. A decode step is hundreds of
//!   tiny operations; waking sleeping threads for each (rayon) costs more than the
//!   work. Workers spin briefly, then yield, then sleep, so an idle model costs no
//!   CPU and a busy host is not starved.
//! * A dedicated rayon pool per model for candle-backed models, so several loaded
//!   models (the server) never share or resize the global pool.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Default thread count: `min(available cores, 4)`.
///
/// On a small (2-core) host that is also running something else, two spinning
/// threads can collapse throughput; `threads = 1` is then often faster.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

const SPIN_ITERS: u32 = 1 << 12;
const YIELD_ITERS: u32 = 1 << 11;

#[inline]
fn backoff(iter: &mut u32) -> bool {
    *iter += 1;
    if *iter < SPIN_ITERS {
        std::hint::spin_loop();
        false
    } else if *iter < SPIN_ITERS + YIELD_ITERS {
        std::thread::yield_now();
        false
    } else {
        true
    }
}

/// A reusable barrier for the threads of one [`SpinPool::run`].
pub struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        Self {
            n,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    pub fn wait(&self) {
        if self.n <= 1 {
            return;
        }
        let gen = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
        } else {
            let mut it = 0u32;
            while self.generation.load(Ordering::Acquire) == gen {
                if backoff(&mut it) {
                    // Never sleep inside a pass: keep yielding.
                    std::thread::yield_now();
                    it = SPIN_ITERS;
                }
            }
        }
    }
}

/// Per-thread view handed to a job.
pub struct Team<'a> {
    pub ith: usize,
    pub nth: usize,
    barrier: &'a SpinBarrier,
}

impl Team<'_> {
    #[inline]
    pub fn sync(&self) {
        self.barrier.wait();
    }

    /// This thread's share `[start, end)` of `n` items, in multiples of `align`.
    #[inline]
    pub fn range(&self, n: usize, align: usize) -> (usize, usize) {
        split_range(n, self.ith, self.nth, align)
    }
}

pub fn split_range(n: usize, ith: usize, nth: usize, align: usize) -> (usize, usize) {
    let align = align.max(1);
    let units = n.div_ceil(align);
    let per = units / nth;
    let extra = units % nth;
    let start_u = ith * per + ith.min(extra);
    let end_u = start_u + per + usize::from(ith < extra);
    ((start_u * align).min(n), (end_u * align).min(n))
}

type Job = dyn Fn(&Team<'_>) + Sync;

struct Shared {
    job: Mutex<Option<&'static Job>>,
    epoch: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    barrier: SpinBarrier,
    nth: usize,
}

pub struct SpinPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for SpinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpinPool({})", self.shared.nth)
    }
}

impl SpinPool {
    pub fn new(threads: usize) -> Self {
        let nth = threads.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            epoch: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            barrier: SpinBarrier::new(nth),
            nth,
        });
        let handles = (1..nth)
            .filter_map(|ith| {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name(format!("tanto-infer-{ith}"))
                    .spawn(move || worker(sh, ith))
                    .ok()
            })
            .collect::<Vec<_>>();
        // If a spawn failed, fall back to a single thread.
        if handles.len() + 1 != nth {
            shared.shutdown.store(true, Ordering::SeqCst);
            shared.wake.notify_all();
            return Self::new(1);
        }
        Self {
            shared,
            handles,
            run_lock: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.shared.nth
    }

    /// Run `f` on every thread of the team (the caller is thread 0) and wait.
    pub fn run<F: Fn(&Team<'_>) + Sync>(&self, f: F) -> Result<(), String> {
        let sh = &*self.shared;
        if sh.nth == 1 {
            let team = Team {
                ith: 0,
                nth: 1,
                barrier: &sh.barrier,
            };
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&team)))
                .map_err(|_| "inference thread panicked".to_string());
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let job: &(dyn Fn(&Team<'_>) + Sync) = &f;
        // SAFETY: the reference is only used until every worker has reported `done`
        // for this epoch, which `run` waits for before returning (even on panic).
        let job: &'static Job =
            unsafe { std::mem::transmute::<&(dyn Fn(&Team<'_>) + Sync), &'static Job>(job) };
        *sh.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
        sh.done.store(0, Ordering::SeqCst);
        sh.panicked.store(false, Ordering::SeqCst);
        {
            let _l = sh.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            sh.epoch.fetch_add(1, Ordering::SeqCst);
            sh.wake.notify_all();
        }
        let team = Team {
            ith: 0,
            nth: sh.nth,
            barrier: &sh.barrier,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&team)));
        let mut it = 0u32;
        while sh.done.load(Ordering::Acquire) != sh.nth - 1 {
            if backoff(&mut it) {
                std::thread::yield_now();
                it = SPIN_ITERS;
            }
        }
        *sh.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if r.is_err() || sh.panicked.load(Ordering::SeqCst) {
            return Err("inference thread panicked".into());
        }
        Ok(())
    }
}

fn worker(sh: Arc<Shared>, ith: usize) {
    let mut seen = 0usize;
    loop {
        // Wait for a new epoch: spin, yield, then sleep.
        let mut it = 0u32;
        loop {
            if sh.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = sh.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if backoff(&mut it) {
                let l = sh.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                if sh.epoch.load(Ordering::Acquire) == seen && !sh.shutdown.load(Ordering::Acquire)
                {
                    let _l = sh.wake.wait(l).unwrap_or_else(|p| p.into_inner());
                }
                it = 0;
            }
        }
        let job = *sh.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = job {
            let team = Team {
                ith,
                nth: sh.nth,
                barrier: &sh.barrier,
            };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&team))).is_err() {
                sh.panicked.store(true, Ordering::SeqCst);
            }
        }
        sh.done.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        {
            let _l = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.shared.shutdown.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A dedicated rayon pool (candle-backed models run inside it).
pub fn rayon_pool(threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("tanto-rayon-{i}"))
        .build()
        .ok()
}

/// Shared mutable buffer for lock-step passes: threads write disjoint ranges
/// between barriers.
pub struct SharedBuf<T> {
    ptr: *mut T,
    len: usize,
}

unsafe impl<T: Send> Send for SharedBuf<T> {}
unsafe impl<T: Send> Sync for SharedBuf<T> {}

impl<T> SharedBuf<T> {
    pub fn new(v: &mut [T]) -> Self {
        Self {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        }
    }

    /// # Safety
    /// No other thread may access `[start, start+len)` mutably at the same time.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }

    /// # Safety
    /// No thread may write `[start, start+len)` at the same time.
    #[inline]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &[T] {
        assert!(start + len <= self.len);
        std::slice::from_raw_parts(self.ptr.add(start), len)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything() {
        for n in [0, 1, 7, 64, 100] {
            for nth in 1..5 {
                let mut covered = 0;
                let mut last = 0;
                for ith in 0..nth {
                    let (s, e) = split_range(n, ith, nth, 4);
                    assert_eq!(s, last);
                    covered += e - s;
                    last = e;
                }
                assert_eq!(covered, n);
            }
        }
    }

    #[test]
    fn pool_runs_lockstep() {
        let pool = SpinPool::new(3);
        let mut data = vec![0usize; 30];
        for round in 0..50 {
            let buf = SharedBuf::new(&mut data);
            pool.run(|t| {
                let (s, e) = t.range(30, 1);
                let part = unsafe { buf.slice_mut(s, e - s) };
                for x in part.iter_mut() {
                    *x += 1;
                }
                t.sync();
                // After the barrier everybody sees everybody's writes.
                let all = unsafe { buf.slice(0, 30) };
                assert!(all.iter().all(|&x| x == round + 1));
                t.sync();
            })
            .unwrap();
        }
        assert!(data.iter().all(|&x| x == 50));
    }
}
