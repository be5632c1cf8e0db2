//! /proc/PID/status and /proc/PID/task: thread lists, tracer, state, capabilities, seccomp.

use std::io;

/// The fields of /proc/PID/status that attach and diagnosis need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcStatus {
    /// `Name:` (the comm).
    pub name: String,
    /// `State:` first letter (R, S, D, T, t, Z, X).
    pub state: char,
    /// `Tgid:`: the process id of the thread group.
    pub tgid: i32,
    /// `TracerPid:` (0 when not traced).
    pub tracer_pid: i32,
    /// `Seccomp:` mode (0 none, 1 strict, 2 filter).
    pub seccomp: u32,
    /// `CapEff:` as a bit mask.
    pub cap_eff: u64,
    /// `Uid:` real and effective.
    pub uid: (u32, u32),
}

/// Reads /proc/PID/status (or /proc/TID/status for a thread).
pub fn read_status(pid: i32) -> io::Result<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(parse_status(&text))
}

/// Parses the text of a status file.
pub fn parse_status(text: &str) -> ProcStatus {
    let mut s = ProcStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => s.name = value.to_string(),
            "State" => s.state = value.chars().next().unwrap_or('?'),
            "Tgid" => s.tgid = value.parse().unwrap_or(0),
            "TracerPid" => s.tracer_pid = value.parse().unwrap_or(0),
            "Seccomp" => s.seccomp = value.parse().unwrap_or(0),
            "CapEff" => s.cap_eff = u64::from_str_radix(value, 16).unwrap_or(0),
            "Uid" => {
                let mut it = value.split_whitespace().filter_map(|v| v.parse().ok());
                s.uid = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            }
            _ => {}
        }
    }
    s
}

/// The thread ids of a process, from /proc/PID/task. Threads appear and vanish while we read;
/// callers must expect both.
pub fn list_tasks(pid: i32) -> io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The name of a process for messages (`comm`), or `?`.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = parse_status(
            "Name:\tloop\nState:\tS (sleeping)\nTgid:\t42\nTracerPid:\t7\nUid:\t1000\t1001\t1000\t1000\nCapEff:\t000001ffffffffff\nSeccomp:\t2\n",
        );
        assert_eq!(s.name, "loop");
        assert_eq!(s.state, 'S');
        assert_eq!(s.tgid, 42);
        assert_eq!(s.tracer_pid, 7);
        assert_eq!(s.uid, (1000, 1001));
        assert_eq!(s.cap_eff, 0x1ffffffffff);
        assert_eq!(s.seccomp, 2);
    }

    #[test]
    fn lists_our_own_threads() {
        let me = std::process::id() as i32;
        let tids = list_tasks(me).unwrap();
        assert!(tids.contains(&me));
    }
}
