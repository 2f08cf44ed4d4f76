//! What a run stopped by a signal leaves behind: nothing of its own.
//!
//! `SIGTERM` (`timeout`, `systemctl stop`, a scheduler's kill), `SIGINT` (Ctrl-C) and `SIGHUP`
//! used to end a run on the spot, leaving its temporary output folder (spill files included:
//! about 200 bytes per act, gigabytes for a large run) and its lock file beside `--out`, until
//! a later run on the same `--out` removed them; with an output folder per month, never.
//! [`install`] has one thread wait for those signals; on one, it removes the paths registered
//! with [`Cleanup::register`] and ends the process by the same signal (so that the caller sees
//! what stopped it). A commit holds [`Cleanup::hold`] while it renames, so that a signal never
//! lands between its two renames. `SIGKILL` cannot be caught: the next run on that `--out`
//! cleans up after it.
//!
//! Once the commit has put the outputs in place ([`mark_outputs_in_place`]), a first signal
//! no longer stops the run at once: what is left is housekeeping (removing the previous
//! outputs, the last lines), and a run that ended by the signal would say that `--out` was
//! left whole when it holds the new outputs (found by QA: 4 times in 4 with a `SIGTERM` sent as
//! the outputs were swapped). The run finishes with its own exit code and says it had the
//! signal ([`say_deferred`]). A second signal, or [`GRACE`] without the run ending (a stalled
//! pipe, a hung file system), ends it by the signal, its last line saying that the outputs
//! are this run's (`"outputs_replaced": true` in JSON).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The paths to remove if a signal stops the process.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Whether the run logs JSON lines: the line that says a signal stopped it is one too.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the command has no `--out` ([`without_out`]).
static NO_OUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the run's outputs are in place ([`mark_outputs_in_place`]).
static IN_PLACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The signal received once the outputs were in place, which the run finishes in spite of
/// (0: none).
static DEFERRED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// How long a run that had a signal once its outputs were in place may take to finish before
/// the signal ends it after all: its housekeeping takes well under a second, and a scheduler
/// waits some 10 to 30 s before it kills.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Says that the run's outputs have replaced `--out`: from now on a first signal lets the run
/// finish. Called by a commit while it holds [`Cleanup::hold`], so that the signal's thread,
/// which waits for that guard, sees it.
pub fn mark_outputs_in_place() {
    if !NO_OUT.load(std::sync::atomic::Ordering::SeqCst) {
        IN_PLACE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Says that the command has no `--out` (`validate`: its run's outputs go to a temporary
/// folder of its own, listed then removed): a signal stops it at any time, and its line names
/// the temporary files alone.
pub fn without_out() {
    NO_OUT.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The signal the run finished in spite of, if one came once its outputs were in place.
pub fn deferred_signal() -> Option<i32> {
    match DEFERRED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// What the signal's thread does with a signal: let the run finish (the first one once the
/// outputs are in place), or stop it.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnSignal {
    Finish,
    Stop { outputs_replaced: bool },
}

/// [`OnSignal`] for a signal, given whether the outputs are in place and whether a signal was
/// let go already.
#[cfg(unix)]
fn on_signal(in_place: bool, already_deferred: bool) -> OnSignal {
    match (in_place, already_deferred) {
        (true, false) => OnSignal::Finish,
        _ => OnSignal::Stop {
            outputs_replaced: in_place,
        },
    }
}

/// Makes the line written when a signal stops the run a JSON object (`--log-format json`).
pub fn set_json_logs(json: bool) {
    JSON_LOGS.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Writes [`stopped_line`] on stderr from a thread of its own, waited for half a second at
/// most: a full pipe or a stalled terminal (or another thread blocked holding stderr) must
/// not keep the run from ending by its signal.
#[cfg(unix)]
fn say_stopped(signal: libc::c_int, outputs_replaced: bool) {
    let line = stopped_line(signal, outputs_replaced);
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().spawn(move || {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{line}");
        let _ = done.send(());
    });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(std::time::Duration::from_millis(500));
    }
}

/// The line that says which signal stopped the run: a log that ended on a progress line did
/// not tell a cron job's reader why the run stopped.
#[cfg(unix)]
fn stopped_line(signal: libc::c_int, outputs_replaced: bool) -> String {
    let name = signal_name(signal);
    let message = if outputs_replaced {
        format!(
            "stopped by {name} once its outputs were in place: --out holds this run's outputs, whole"
        )
    } else if NO_OUT.load(std::sync::atomic::Ordering::SeqCst) {
        format!("stopped by {name}: temporary files removed")
    } else {
        format!("stopped by {name}: temporary files removed, --out left whole (not replaced)")
    };
    signal_line(("error", "stopped"), &message, signal, outputs_replaced)
}

/// A line of the signals' log: text (`rac: …`, `rac: warning: …`), or JSON with
/// `--log-format json`, which says whether `--out` holds this run's outputs.
#[cfg(unix)]
fn signal_line(
    (level, step): (&str, &str),
    message: &str,
    signal: libc::c_int,
    outputs_replaced: bool,
) -> String {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        serde_json::json!({
            "level": level, "step": step, "message": message, "signal": signal,
            "outputs_replaced": outputs_replaced,
        })
        .to_string()
    } else if level == "error" {
        format!("rac: {message}")
    } else {
        format!("rac: warning: {message}")
    }
}

#[cfg(unix)]
fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Says, at the end of a run, that it had a signal once its outputs were in place and
/// finished: the exit code is the run's, the outputs are this run's.
#[cfg(unix)]
pub fn say_deferred() {
    if let Some(signal) = deferred_signal() {
        let message = format!(
            "{} came once the outputs were in place: the run finished, --out holds its outputs",
            signal_name(signal)
        );
        let line = signal_line(("warn", "signal"), &message, signal, true);
        crate::cli::write_err(format_args!("{line}"));
    }
}

/// Elsewhere, no signal is taken.
#[cfg(not(unix))]
pub fn say_deferred() {}

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Paths (files or folders) removed if a signal stops the process, until dropped.
#[derive(Debug)]
pub struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Cleanup {
    /// Registers `paths`.
    pub fn register(paths: &[&Path]) -> Cleanup {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        pending().extend(paths.iter().cloned());
        Cleanup { paths }
    }

    /// Removes `path` from the paths to remove on a signal (one added to [`Cleanup::hold`]'s
    /// list).
    pub fn forget(path: &Path) {
        pending().retain(|p| p != path);
    }

    /// Keeps a signal from being acted on (it waits) until the guard is dropped: for a
    /// sequence of file-system changes that must not be cut in two.
    pub fn hold() -> MutexGuard<'static, Vec<PathBuf>> {
        pending()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut pending = pending();
        for path in &self.paths {
            // `remove`, not `swap_remove`: the order of the others is kept (see `clean_up`).
            if let Some(i) = pending.iter().position(|p| p == path) {
                pending.remove(i);
            }
        }
    }
}

/// Removes every registered path; called on a signal. The run's other threads go on meanwhile
/// (a spill file may be created in a folder being removed): a folder is removed again until it
/// is gone, a few times at most. Last registered, first removed: a lock is registered before
/// the folder it guards, and must outlive it (a run finding a folder whose lock is free
/// removes it; a lock removed first would leave an unguarded folder nobody removes).
fn clean_up(pending: &[PathBuf]) {
    for path in pending.iter().rev() {
        for _ in 0..100 {
            let removed = match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
                Ok(_) => std::fs::remove_file(path),
                Err(_) => break,
            };
            if removed.is_ok() {
                break;
            }
        }
    }
}

#[cfg(unix)]
const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Has a thread take `SIGTERM`, `SIGINT` and `SIGHUP` for the process. Call it first thing in
/// `main`, before any other thread starts: the threads started after it inherit the blocked
/// signals, so that only this one receives them.
#[cfg(unix)]
pub fn install() {
    // SAFETY: plain calls on a signal set and a signal action owned here.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SIGNALS {
            // A signal the caller set to be ignored (`nohup`, `trap '' INT`) stays ignored: a
            // blocked signal is queued for `sigwait` even so.
            let mut current: libc::sigaction = std::mem::zeroed();
            let ignored = libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN;
            if !ignored {
                libc::sigaddset(&mut set, signal);
            }
        }
        set
    };
    // SAFETY: blocks the signals in this thread (and those it starts).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let waiter = std::thread::Builder::new()
        .name("rac-signals".into())
        .spawn(move || {
            loop {
                // Once a signal was let go, the next one, or the end of the grace.
                let grace =
                    (DEFERRED.load(std::sync::atomic::Ordering::SeqCst) != 0).then_some(GRACE);
                let signal = match next_signal(&set, grace) {
                    Some(signal) => signal,
                    None if grace.is_some() => DEFERRED.load(std::sync::atomic::Ordering::SeqCst),
                    None => continue,
                };
                // Waits for a commit in progress; the process ends holding the guard.
                let pending = pending();
                let in_place = IN_PLACE.load(std::sync::atomic::Ordering::SeqCst);
                let deferred = DEFERRED.load(std::sync::atomic::Ordering::SeqCst) != 0;
                let outputs_replaced = match on_signal(in_place, deferred) {
                    OnSignal::Finish => {
                        DEFERRED.store(signal, std::sync::atomic::Ordering::SeqCst);
                        continue;
                    }
                    OnSignal::Stop { outputs_replaced } => outputs_replaced,
                };
                clean_up(&pending);
                say_stopped(signal, outputs_replaced);
                // Again: a file made since in a registered folder (a spill file of a thread
                // still running) while the line was written. The paths themselves are
                // created under this guard, and no path is registered while it is held.
                clean_up(&pending);
                // SAFETY: the default action back, the signal unblocked in this thread and
                // sent to it: the process ends as the signal's default does.
                unsafe {
                    libc::signal(signal, libc::SIG_DFL);
                    let mut one: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut one);
                    libc::sigaddset(&mut one, signal);
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                    libc::raise(signal);
                }
                std::process::exit(128 + signal);
            }
        });
    if waiter.is_err() {
        // No thread to take them: the signals act as they did.
        // SAFETY: unblocks the set blocked above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// The next of the signals of `set`, or `None` once `grace` (if any) has passed without one
/// (or if the wait fails).
#[cfg(unix)]
fn next_signal(set: &libc::sigset_t, grace: Option<std::time::Duration>) -> Option<libc::c_int> {
    #[cfg(target_os = "linux")]
    if let Some(grace) = grace {
        let deadline = std::time::Instant::now() + grace;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let timeout = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // SAFETY: waits on a set owned by the caller; no siginfo asked for.
            let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
            if signal > 0 {
                return Some(signal);
            }
            // Interrupted by another signal: wait out the rest; else the grace is over.
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return None;
            }
        }
    }
    // Elsewhere no grace: the next signal only.
    let _ = grace;
    let mut signal: libc::c_int = 0;
    // SAFETY: waits on a set owned by the caller.
    (unsafe { libc::sigwait(set, &mut signal) } == 0).then_some(signal)
}

/// Elsewhere, signals act as the system has them.
#[cfg(not(unix))]
pub fn install() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_first_signal_once_the_outputs_are_in_place_lets_the_run_finish() {
        assert_eq!(
            on_signal(false, false),
            OnSignal::Stop {
                outputs_replaced: false
            }
        );
        assert_eq!(on_signal(true, false), OnSignal::Finish);
        assert_eq!(
            on_signal(true, true),
            OnSignal::Stop {
                outputs_replaced: true
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_stopped_line_says_whether_the_outputs_were_replaced() {
        assert_eq!(
            stopped_line(libc::SIGTERM, false),
            "rac: stopped by SIGTERM: temporary files removed, --out left whole (not replaced)"
        );
        assert_eq!(
            stopped_line(libc::SIGINT, true),
            "rac: stopped by SIGINT once its outputs were in place: --out holds this run's outputs, whole"
        );
    }

    #[test]
    fn registered_paths_are_removed_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(".out.tmp-1");
        std::fs::create_dir_all(folder.join(".spill")).unwrap();
        let file = dir.path().join(".out.lock");
        std::fs::write(&file, "1\n").unwrap();
        let kept = dir.path().join("kept");
        std::fs::write(&kept, "").unwrap();
        let cleanup = Cleanup::register(&[&folder, &file]);
        let other = Cleanup::register(&[&kept]);
        drop(other);
        let pending: Vec<PathBuf> = Cleanup::hold()
            .iter()
            .filter(|p| p.starts_with(dir.path()))
            .cloned()
            .collect();
        assert_eq!(pending, [folder.clone(), file.clone()]);
        clean_up(&pending);
        assert!(!folder.exists() && !file.exists() && kept.exists());
        drop(cleanup);
        assert!(!Cleanup::hold().iter().any(|p| p.starts_with(dir.path())));
    }

    #[test]
    fn the_paths_keep_their_order_when_others_are_dropped() {
        // `clean_up` removes them last first: a lock (registered before its folder) after it.
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = ["a.lock", "b", "c"].map(|n| dir.path().join(n));
        let first = Cleanup::register(&[&a]);
        let second = Cleanup::register(&[&b]);
        let third = Cleanup::register(&[&c]);
        let ours = || -> Vec<PathBuf> {
            Cleanup::hold()
                .iter()
                .filter(|p| p.starts_with(dir.path()))
                .cloned()
                .collect()
        };
        assert_eq!(ours(), [a.clone(), b.clone(), c.clone()]);
        drop(first);
        // `swap_remove` would have put `c` before `b`.
        assert_eq!(ours(), [b.clone(), c.clone()]);
        drop((second, third));
        assert!(ours().is_empty());
    }
}
