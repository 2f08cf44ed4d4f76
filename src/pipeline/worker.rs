//! A stage of the pipeline that takes items in order beside the thread that sends them: the
//! writer of the output tables, the writer of spill files. One type for what each did its own
//! way: a bounded queue, an end asked for explicitly, a failure reported at a later send or
//! at the finish, a thread always waited for, its panic raised again.
//!
//! With one worker (`--threads 1`, [`super::single_threaded`]) the stage runs in line, on the
//! sender's thread, so that the run uses one core.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// What a [`Worker`] runs.
pub(crate) trait Stage: Send + 'static {
    type Item: Send + 'static;
    type Output: Send + 'static;
    type Error: Send + 'static;

    /// Handles the next item; after an error the stage takes nothing more.
    fn take(&mut self, item: Self::Item) -> Result<(), Self::Error>;

    /// Ends the stage once every item was taken.
    fn finish(self) -> Result<Self::Output, Self::Error>;
}

/// The error of a stage that is asked for more after it stopped (it reported its own error
/// already).
type Stopped<E> = Arc<dyn Fn() -> E + Send + Sync>;

enum Message<I> {
    Item(I),
    /// Every item was sent: the stage finishes. A queue closed without it (the run failed)
    /// drops the stage unfinished: no work for a folder about to be removed.
    Finish,
}

enum Lane<S: Stage> {
    Inline(S),
    Thread {
        queue: SyncSender<Message<S::Item>>,
        handle: JoinHandle<Result<S::Output, S::Error>>,
    },
    /// Finished, or failed (the error was returned).
    Stopped,
}

/// A [`Stage`] on a thread of its own fed through a bounded queue, or in line. However it
/// ends (finished, or dropped on an error) its thread is waited for: it never writes into a
/// folder the run is removing.
pub(crate) struct Worker<S: Stage> {
    lane: Lane<S>,
    stopped: Stopped<S::Error>,
}

impl<S: Stage> Worker<S> {
    /// Starts `stage` on a thread named `name` whose queue holds `capacity` items (0: hand to
    /// hand), or in line with one worker. `stopped` is the error for items sent after the
    /// stage failed.
    pub(crate) fn start(
        name: &str,
        capacity: usize,
        stage: S,
        stopped: impl Fn() -> S::Error + Send + Sync + 'static,
    ) -> std::io::Result<Worker<S>> {
        let stopped: Stopped<S::Error> = Arc::new(stopped);
        if super::single_threaded() {
            return Ok(Worker {
                lane: Lane::Inline(stage),
                stopped,
            });
        }
        let (queue, received) = sync_channel(capacity);
        let closed = Arc::clone(&stopped);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut stage = stage;
                for message in received {
                    match message {
                        Message::Item(item) => stage.take(item)?,
                        Message::Finish => return stage.finish(),
                    }
                }
                Err(closed())
            })?;
        Ok(Worker {
            lane: Lane::Thread { queue, handle },
            stopped,
        })
    }

    /// Hands `item` to the stage; if the stage failed, its error (once, then `stopped`). On a
    /// thread the item is only queued: its own failure comes at a later send or at the finish.
    pub(crate) fn send(&mut self, item: S::Item) -> Result<(), S::Error> {
        match &mut self.lane {
            Lane::Inline(stage) => {
                let taken = stage.take(item);
                if taken.is_err() {
                    self.lane = Lane::Stopped;
                }
                taken
            }
            Lane::Thread { queue, .. } => match queue.send(Message::Item(item)) {
                Ok(()) => Ok(()),
                // The thread ended on an error: it is in its result.
                Err(_) => self.end().and_then(|_| Err((self.stopped)())),
            },
            Lane::Stopped => Err((self.stopped)()),
        }
    }

    /// Finishes the stage after the items sent, and returns what it made.
    pub(crate) fn finish(mut self) -> Result<S::Output, S::Error> {
        self.end()
    }

    fn end(&mut self) -> Result<S::Output, S::Error> {
        match std::mem::replace(&mut self.lane, Lane::Stopped) {
            Lane::Inline(stage) => stage.finish(),
            Lane::Thread { queue, handle } => {
                // A thread that already failed has dropped its end: its error comes below.
                let _ = queue.send(Message::Finish);
                drop(queue);
                match handle.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Lane::Stopped => Err((self.stopped)()),
        }
    }
}

impl<S: Stage> Drop for Worker<S> {
    /// The run has already failed: the stage's own error adds nothing, but its panic is raised
    /// again (unless this thread is already panicking).
    fn drop(&mut self) {
        if let Lane::Thread { queue, handle } = std::mem::replace(&mut self.lane, Lane::Stopped) {
            drop(queue);
            if let Err(panic) = handle.join()
                && !std::thread::panicking()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Sums numbers, fails on a negative one; records whether it finished.
    struct Adder {
        sum: i64,
        finished: Arc<Mutex<bool>>,
    }

    impl Stage for Adder {
        type Item = i64;
        type Output = i64;
        type Error = String;

        fn take(&mut self, n: i64) -> Result<(), String> {
            if n < 0 {
                return Err(format!("negative: {n}"));
            }
            self.sum += n;
            Ok(())
        }

        fn finish(self) -> Result<i64, String> {
            *self.finished.lock().unwrap() = true;
            Ok(self.sum)
        }
    }

    /// An adder started with a queue of `capacity`, and its "finished" mark.
    fn adder(capacity: usize) -> (Worker<Adder>, Arc<Mutex<bool>>) {
        let finished = Arc::new(Mutex::new(false));
        let stage = Adder {
            sum: 0,
            finished: Arc::clone(&finished),
        };
        let worker = Worker::start("test-adder", capacity, stage, || "stopped".into()).unwrap();
        (worker, finished)
    }

    /// Runs `f` on a pool of `threads` (one: the stage runs in line).
    pub(in crate::pipeline) fn on_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn a_stage_takes_every_item_in_order_and_finishes_once_asked() {
        for threads in [1, 2] {
            on_pool(threads, || {
                let (mut worker, finished) = adder(0);
                for n in 1..=100 {
                    worker.send(n).unwrap();
                }
                assert!(!*finished.lock().unwrap());
                assert_eq!(worker.finish(), Ok(5050));
                assert!(*finished.lock().unwrap());
            });
        }
    }

    #[test]
    fn a_failed_stage_reports_its_error_then_stopped() {
        for threads in [1, 2] {
            on_pool(threads, || {
                let (mut worker, finished) = adder(0);
                worker.send(1).unwrap();
                // On a thread, the failing item is only queued; the error comes at a later send
                // (or at the finish), whichever comes first, and once.
                let mut errors = Vec::new();
                for n in [-1, 2, 3] {
                    if let Err(e) = worker.send(n) {
                        errors.push(e);
                    }
                }
                errors.extend(worker.finish().err());
                assert_eq!(errors[0], "negative: -1", "threads {threads}");
                assert!(errors[1..].iter().all(|e| e == "stopped"), "{errors:?}");
                assert!(!*finished.lock().unwrap());
            });
        }
    }

    #[test]
    fn a_dropped_worker_waits_for_its_thread_and_leaves_the_stage_unfinished() {
        on_pool(2, || {
            let (mut worker, finished) = adder(4);
            for n in 1..=10 {
                worker.send(n).unwrap();
            }
            drop(worker);
            // Joined on drop: the stage was dropped on its thread, unfinished.
            assert_eq!(Arc::strong_count(&finished), 1);
            assert!(!*finished.lock().unwrap());
        });
    }

    #[test]
    #[should_panic(expected = "stage panicked")]
    fn a_panic_of_the_stage_is_raised_in_the_sender() {
        struct Panics;
        impl Stage for Panics {
            type Item = ();
            type Output = ();
            type Error = String;
            fn take(&mut self, (): ()) -> Result<(), String> {
                panic!("stage panicked")
            }
            fn finish(self) -> Result<(), String> {
                Ok(())
            }
        }
        on_pool(2, || {
            let mut worker = Worker::start("test-panics", 0, Panics, || "stopped".into()).unwrap();
            let _ = worker.send(());
            let _ = worker.finish();
        });
    }
}
