//! `--threads N`: the rows of every matrix product spread over `N` threads
//! (the calling thread and `N - 1` workers), with the core's
//! [`Parallel`] hook.
//!
//! [`Pool`] keeps its workers for the whole command (a scoped thread each,
//! so no `unsafe` and no `'static` bounds). For each product the calling
//! thread copies the input into the pool (a few KiB), wakes the workers,
//! computes the first part of the rows itself, waits for the others and
//! copies their rows into place. Workers spin briefly before sleeping, so
//! the wake-ups of a decode step, a few microseconds apart, cost no system
//! call. Products too small to pay for the hand-off ([`MIN_WORK`]) run on
//! the calling thread alone.
//!
//! Every output value is computed by exactly one thread with the same
//! kernel, so the results are bit-identical whatever the thread count.
//!
//! [`Spawn`] is the simple alternative (scoped threads spawned for every
//! product), kept for `latte bench --spawn-per-product`.

use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::{self, Scope, Thread};
use std::time::{Duration, Instant};

use latte_core::{BlockQ8_0, Parallel, RowTask, TaskInput};

/// Products smaller than this many multiply-adds ([`RowTask::work`]) per
/// extra thread run on the calling thread only: below it the hand-off
/// (copy, wake, wait, copy back; about a microsecond) costs more than the
/// rows it moves. Measured on `latte-micro`: 16K (`Wo`, one token).
pub const MIN_WORK: usize = 16 * 1024;

/// How long an idle worker, or the calling thread waiting for the workers,
/// polls before it sleeps: first [`SPINS`] busy spins, then yielding the
/// CPU between polls (so that a thread that shares its core with the one
/// it waits for, on a busy machine, lets that one run).
const POLL: Duration = Duration::from_micros(100);

/// Busy spins before yielding (about a microsecond).
const SPINS: u32 = 128;

/// The thread count when `--threads` is not given: the parallelism the OS
/// reports for this process (1 if unknown).
pub fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Most threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// Parses `--threads`: a whole number from 1 to [`MAX_THREADS`].
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(
            "--threads 0: at least one thread is needed (1 runs everything on the main thread)"
                .into(),
        ),
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(format!(
            "`{s}` is not a thread count: a whole number from 1 to {MAX_THREADS}"
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of a task's input that the workers read.
enum Input {
    F32(Vec<f32>),
    Q8_0(Vec<BlockQ8_0>),
}

impl Input {
    fn as_task_input(&self) -> TaskInput<'_> {
        match self {
            Input::F32(x) => TaskInput::F32(x),
            Input::Q8_0(x) => TaskInput::Q8_0(x),
        }
    }

    fn set(&mut self, from: TaskInput<'_>) {
        match (self, from) {
            (Input::F32(v), TaskInput::F32(x)) => {
                v.clear();
                v.extend_from_slice(x);
            }
            (Input::Q8_0(v), TaskInput::Q8_0(x)) => {
                v.clear();
                v.extend_from_slice(x);
            }
            (me, TaskInput::F32(x)) => *me = Input::F32(x.to_vec()),
            (me, TaskInput::Q8_0(x)) => *me = Input::Q8_0(x.to_vec()),
        }
    }
}

/// The product being computed: the task (its input lives in
/// [`Shared::input`]), how many parts, the calling thread to wake, and a
/// serial number.
#[derive(Clone)]
struct Job<'a> {
    epoch: u64,
    task: RowTask<'a, 'static>,
    parts: usize,
    caller: Thread,
}

struct Shared<'a> {
    /// Serial number of the latest job (workers watch it).
    epoch: AtomicU64,
    job: Mutex<Option<Job<'a>>>,
    input: RwLock<Input>,
    /// Worker `i`'s rows (part `i + 1`), token-major.
    outputs: Vec<Mutex<Vec<f32>>>,
    /// Workers done with the current job.
    done: AtomicUsize,
    quit: AtomicBool,
    /// A worker's computation panicked (a bug): the caller panics too.
    failed: AtomicBool,
}

/// A persistent pool of `threads - 1` workers plus the calling thread.
/// Create it with [`with_pool`]; use it from one thread at a time.
pub struct Pool<'a> {
    shared: Arc<Shared<'a>>,
    workers: Vec<Thread>,
    /// Serializes `run` (the pool handles one product at a time).
    running: Mutex<()>,
}

/// Runs `f` with a pool of `threads` threads (the calling one included;
/// 1 = no worker threads), which lives until `f` returns.
pub fn with_pool<'a, R>(threads: usize, f: impl FnOnce(&Pool<'a>) -> R) -> R {
    thread::scope(|scope| {
        let pool = Pool::new(scope, threads.max(1));
        f(&pool)
    })
}

impl<'a> Pool<'a> {
    fn new<'scope, 'env>(scope: &'scope Scope<'scope, 'env>, threads: usize) -> Self
    where
        'a: 'scope,
    {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            input: RwLock::new(Input::F32(Vec::new())),
            outputs: (1..threads).map(|_| Mutex::new(Vec::new())).collect(),
            done: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for part in 1..threads {
            let worker_shared = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name(format!("latte-worker-{part}"))
                .spawn_scoped(scope, move || worker(&worker_shared, part));
            match spawned {
                Ok(handle) => workers.push(handle.thread().clone()),
                Err(e) => {
                    // Go on with the threads there are (same results).
                    eprintln!(
                        "note: could start only {} of {threads} threads ({e}); going on with those",
                        workers.len() + 1
                    );
                    break;
                }
            }
        }
        Pool {
            shared,
            workers,
            running: Mutex::new(()),
        }
    }

    /// Threads in the pool, the calling one included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// How many parts `task` is split into.
    fn parts(&self, task: &RowTask<'a, '_>) -> usize {
        let by_work = task.work() / MIN_WORK;
        let by_rows = task.rows() / 4;
        self.threads().min(by_work).min(by_rows).max(1)
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
    }
}

/// Waits until `ready`: spins, then yields, then sleeps ([`POLL`]).
fn wait(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() && spins < SPINS {
        spins += 1;
        std::hint::spin_loop();
    }
    let start = Instant::now();
    while !ready() {
        if start.elapsed() < POLL {
            thread::yield_now();
        } else {
            // Woken by `unpark`; spurious wake-ups just loop.
            thread::park_timeout(Duration::from_millis(10));
        }
    }
}

fn worker(shared: &Shared<'_>, part: usize) {
    let mut seen = 0u64;
    loop {
        wait(|| {
            shared.quit.load(Ordering::Acquire) || shared.epoch.load(Ordering::Acquire) != seen
        });
        if shared.quit.load(Ordering::Acquire) {
            return;
        }
        let Some(job) = lock(&shared.job).clone() else {
            seen = shared.epoch.load(Ordering::Acquire);
            continue;
        };
        // The latest job; `epoch` may still lag behind it, never ahead.
        seen = job.epoch;
        if part >= job.parts {
            continue;
        }
        let ok = catch_unwind(AssertUnwindSafe(|| {
            let input = shared.input.read().unwrap_or_else(|e| e.into_inner());
            let task = job.task.with_input(input.as_task_input());
            let rows = task.part(part, job.parts);
            let mut out = lock(&shared.outputs[part - 1]);
            out.clear();
            out.resize(task.tokens() * rows.len(), 0.0);
            task.compute(rows.clone(), &mut out, rows.len());
        }))
        .is_ok();
        if !ok {
            shared.failed.store(true, Ordering::Release);
        }
        if shared.done.fetch_add(1, Ordering::AcqRel) + 1 == job.parts - 1 {
            job.caller.unpark();
        }
    }
}

/// Copies part `part`'s rows, computed into `buf` (`rows.len()` per
/// token), into place in `out` (`task.rows()` per token).
fn scatter(task: &RowTask<'_, '_>, part: usize, parts: usize, buf: &[f32], out: &mut [f32]) {
    let (rows, r) = (task.rows(), task.part(part, parts));
    if r.is_empty() {
        return;
    }
    for (t, src) in buf.chunks_exact(r.len()).take(task.tokens()).enumerate() {
        if let Some(dst) = out.get_mut(t * rows + r.start..t * rows + r.end) {
            dst.copy_from_slice(src);
        }
    }
}

impl<'a> Parallel<'a> for Pool<'a> {
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]) {
        let rows = task.rows();
        let parts = self.parts(task);
        if parts == 1 {
            return task.compute(0..rows, out, rows);
        }
        let _one_at_a_time = lock(&self.running);
        let s = &*self.shared;
        s.input
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set(task.input());
        s.done.store(0, Ordering::Release);
        let epoch = s.epoch.load(Ordering::Acquire) + 1;
        *lock(&s.job) = Some(Job {
            epoch,
            task: task.with_input(TaskInput::F32(&[])),
            parts,
            caller: thread::current(),
        });
        s.epoch.store(epoch, Ordering::Release);
        for w in &self.workers[..parts - 1] {
            w.unpark();
        }
        task.compute(task.part(0, parts), out, rows);
        wait(|| s.done.load(Ordering::Acquire) >= parts - 1);
        assert!(
            !s.failed.load(Ordering::Acquire),
            "a worker thread panicked while computing a matrix product"
        );
        for part in 1..parts {
            scatter(task, part, parts, &lock(&s.outputs[part - 1]), out);
        }
    }
}

/// Scoped threads spawned for every product (no pool): the first part on
/// the calling thread. Same bits as [`Pool`]; for comparison.
pub struct Spawn(pub usize);

impl<'a> Parallel<'a> for Spawn {
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]) {
        let rows = task.rows();
        let parts = self.0.min(task.work() / MIN_WORK).min(rows / 4).max(1);
        if parts == 1 {
            return task.compute(0..rows, out, rows);
        }
        let compute = move |part: usize| {
            let r = task.part(part, parts);
            let mut buf = vec![0.0; task.tokens() * r.len()];
            task.compute(r.clone(), &mut buf, r.len());
            buf
        };
        let bufs: Vec<Vec<f32>> = thread::scope(|s| {
            // A part whose thread cannot be started is computed here.
            let handles: Vec<_> = (1..parts)
                .map(|part| {
                    thread::Builder::new()
                        .spawn_scoped(s, move || compute(part))
                        .map_err(|_| part)
                })
                .collect();
            task.compute(task.part(0, parts), out, rows);
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    Err(part) => compute(part),
                })
                .collect()
        });
        for (part, buf) in (1..parts).zip(&bufs) {
            scatter(task, part, parts, buf, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latte_core::{Epilogue, Kernels, Matrix, Sequential};

    #[test]
    fn thread_counts_parse() {
        assert_eq!(parse_threads("1"), Ok(1));
        assert_eq!(parse_threads(" 8 "), Ok(8));
        assert!(parse_threads("0")
            .unwrap_err()
            .contains("at least one thread"));
        assert!(parse_threads("-1").is_err());
        assert!(parse_threads("x").is_err());
        assert!(parse_threads("1025").is_err());
        assert!(default_threads() >= 1);
    }

    /// Products of every size and shape through the pool and the spawner,
    /// many times over (each reuses the workers), equal `Sequential`.
    #[test]
    fn pool_and_spawn_give_sequential_bits() {
        let (rows, cols) = (300usize, 96usize);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..rows).map(|i| i as f32 / 100.0).collect();
        let mut wq = vec![BlockQ8_0::default(); rows * cols / 32];
        latte_core::latte_kernels::quantize_row_q8_0(&w, &mut wq);
        let k = Kernels::best();
        for threads in [1usize, 2, 3, 4] {
            with_pool(threads, |pool| {
                assert_eq!(pool.threads(), threads);
                let spawn = Spawn(threads);
                for tokens in [1usize, 2, 7, 33] {
                    let x: Vec<f32> = (0..tokens * cols)
                        .map(|i| (i as f32 * 0.37).sin())
                        .collect();
                    let mut xq = vec![BlockQ8_0::default(); tokens * cols / 32];
                    k.quantize_q8_0(&x, &mut xq);
                    for r in [1usize, 5, 64, 300] {
                        let m = Matrix::from_f32(r, cols, &w[..r * cols]).unwrap();
                        let mq = Matrix::from_q8_0(r, cols, &wq[..r * cols / 32]).unwrap();
                        for task in [
                            RowTask::new(&k, m, TaskInput::F32(&x), tokens),
                            RowTask::new(&k, mq, TaskInput::Q8_0(&xq), tokens)
                                .with_epilogue(Epilogue::BiasGelu(&b)),
                        ] {
                            let mut want = vec![f32::NAN; tokens * r];
                            Sequential.run(&task, &mut want);
                            for par in [pool as &dyn Parallel<'_>, &spawn] {
                                let mut got = vec![f32::NAN; tokens * r];
                                par.run(&task, &mut got);
                                let same = got
                                    .iter()
                                    .zip(&want)
                                    .all(|(a, b)| a.to_bits() == b.to_bits());
                                assert!(same, "threads {threads} tokens {tokens} rows {r}");
                            }
                        }
                    }
                }
            });
        }
    }
}
