//! CPU time, of the calling thread or of the whole process: the log lines that end the reading
//! and the computing say from it which thread held a run back.

/// The CPU time this thread has used, in nanoseconds (0 where it cannot be read).
pub(crate) fn thread_ns() -> u64 {
    #[cfg(unix)]
    return clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    #[cfg(not(unix))]
    return 0;
}

/// The CPU time the whole process has used, in nanoseconds (0 where it cannot be read).
pub(crate) fn process_ns() -> u64 {
    #[cfg(unix)]
    return clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    #[cfg(not(unix))]
    return 0;
}

#[cfg(unix)]
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut time = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: a plain system call filling a buffer owned here, read only when it was filled.
    let time = unsafe {
        if libc::clock_gettime(clock, time.as_mut_ptr()) != 0 {
            return 0;
        }
        time.assume_init()
    };
    (time.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(time.tv_nsec as u64)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_s_cpu_time_grows_with_its_work_and_is_within_the_process_s() {
        let (thread, process) = (thread_ns(), process_ns());
        // Work until this thread's clock says 20 ms (not the wall clock: on a loaded machine
        // 20 ms of wall time may hold much less CPU), or give up after 10 s.
        let started = std::time::Instant::now();
        let mut x = 1u64;
        while thread_ns() - thread < 20_000_000 && started.elapsed().as_secs() < 10 {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let (spent, spent_by_all) = (thread_ns() - thread, process_ns() - process);
        assert!(spent >= 20_000_000, "{spent} ns after 10 s of work");
        // The process clock sums its threads' times as the scheduler last accounted them, which
        // may lag the calling thread's own clock by a tick: a millisecond of slack.
        assert!(
            spent_by_all + 1_000_000 >= spent,
            "{spent_by_all} < {spent}"
        );
    }
}
