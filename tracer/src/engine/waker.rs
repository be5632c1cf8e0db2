//! Waking the ptrace thread out of waitpid.
//!
//! The ptrace thread spends its life blocked in waitpid(-1), which has no file descriptor to
//! poll. Commands reach it through a channel, and the sender then interrupts the waitpid with a
//! signal sent to that one thread (tgkill) whose handler does nothing and is installed without
//! SA_RESTART, so waitpid returns EINTR and the loop drains the channel. A signal that lands
//! just before the thread enters waitpid would be lost, so senders repeat it until the command
//! is answered (every command has a reply). Nothing here runs on the hit path.

use crate::ptrace::{self, Tid};
use std::sync::Once;

/// The signal used to wake the ptrace thread: a real-time signal well above the ones glibc
/// reserves for itself.
pub fn wake_signal() -> i32 {
    libc::SIGRTMIN() + 7
}

extern "C" fn on_wake(_: libc::c_int) {}

/// Installs the no-op handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a valid handler that only returns; zeroed sigaction is a valid
        // initial value and sa_mask is emptied explicitly.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_wake as *const () as usize;
            sa.sa_flags = 0; // no SA_RESTART: waitpid must return EINTR
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(wake_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// Sends the wake signal to the ptrace thread `tid` of this process.
pub fn wake(tid: Tid) {
    let _ = ptrace::tgkill(std::process::id() as i32, tid, wake_signal());
}
