//! Checksums of a multi-machine run, to compare runs (see
//! [`ChecksumLog`]).

use std::fmt;

use crate::id::MachineID;

/// The state checksums one machine (or several) recorded every few turns,
/// so two runs of the same topology, or a run and its replay, can be
/// compared: in lockstep they must agree at every turn on every machine.
///
/// Its text form is a line per record, `checksum <turn> <machine> <hex>`,
/// which [`parse`](Self::parse) reads back (other lines are skipped, so a
/// program's whole output can be parsed).
///
/// ```
/// # use kay::net::ChecksumLog;
/// # use kay::MachineID;
/// let mut a = ChecksumLog::default();
/// a.record(10, MachineID(0), 0xfeed);
/// a.record(10, MachineID(1), 0xbeef);
/// let b = ChecksumLog::parse(&a.to_string());
/// assert_eq!(a.first_divergence(&b), None);
/// let mut c = ChecksumLog::default();
/// c.record(10, MachineID(0), 0xfeed);
/// c.record(10, MachineID(1), 0xdead);
/// assert_eq!(a.first_divergence(&c).unwrap().to_string(),
///            "the runs diverge at turn 10 on machine 1 (0xbeef vs 0xdead)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChecksumLog {
    records: Vec<(u64, MachineID, u64)>,
}

/// Where two [`ChecksumLog`]s first differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The first turn where they differ.
    pub turn: u64,
    /// The first machine (by id) that differs at that turn.
    pub machine: MachineID,
    /// This log's checksum there, if it has one.
    pub ours: Option<u64>,
    /// The other log's checksum there, if it has one.
    pub theirs: Option<u64>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |c: Option<u64>| c.map_or("nothing".to_owned(), |c| format!("{c:#x}"));
        write!(
            f,
            "the runs diverge at turn {} on machine {} ({} vs {})",
            self.turn,
            self.machine.0,
            show(self.ours),
            show(self.theirs)
        )
    }
}

impl ChecksumLog {
    /// Records machine `machine`'s checksum after turn `turn`.
    pub fn record(&mut self, turn: u64, machine: MachineID, checksum: u64) {
        self.records.push((turn, machine, checksum));
    }

    /// Reads the `checksum` lines of `text`.
    pub fn parse(text: &str) -> ChecksumLog {
        let records = text
            .lines()
            .filter_map(|line| {
                let rest = line.split_once("checksum ")?.1;
                let mut parts = rest.split_whitespace();
                let turn = parts.next()?.parse().ok()?;
                let machine = MachineID(parts.next()?.parse().ok()?);
                let hex = parts.next()?.trim_start_matches("0x");
                Some((turn, machine, u64::from_str_radix(hex, 16).ok()?))
            })
            .collect();
        ChecksumLog { records }
    }

    /// Adds another log's records (e.g. the other machines').
    pub fn extend(&mut self, other: &ChecksumLog) {
        self.records.extend_from_slice(&other.records);
    }

    /// The records, sorted by turn and machine.
    pub fn records(&self) -> Vec<(u64, MachineID, u64)> {
        let mut records = self.records.clone();
        records.sort_unstable();
        records
    }

    /// The first (turn, machine) where the logs differ, if any.
    pub fn first_divergence(&self, other: &ChecksumLog) -> Option<Divergence> {
        let ours = self.records();
        let theirs = other.records();
        let keys: std::collections::BTreeSet<(u64, MachineID)> = ours
            .iter()
            .chain(&theirs)
            .map(|&(t, m, _)| (t, m))
            .collect();
        let find = |records: &[(u64, MachineID, u64)], key: (u64, MachineID)| {
            records
                .iter()
                .find(|&&(t, m, _)| (t, m) == key)
                .map(|&(_, _, c)| c)
        };
        keys.into_iter().find_map(|(turn, machine)| {
            let (a, b) = (find(&ours, (turn, machine)), find(&theirs, (turn, machine)));
            (a != b).then_some(Divergence {
                turn,
                machine,
                ours: a,
                theirs: b,
            })
        })
    }
}

/// Compares runs of one topology with the first: a line per later run,
/// saying it agrees with the first at every record, or where it first
/// diverges; `Err` with the lines if any run diverges.
///
/// ```
/// # use kay::net::{ChecksumLog, compare_runs};
/// # use kay::MachineID;
/// let mut a = ChecksumLog::default();
/// a.record(4, MachineID(0), 1);
/// assert!(compare_runs(&[a.clone(), a.clone()]).is_ok());
/// let mut b = ChecksumLog::default();
/// b.record(4, MachineID(0), 2);
/// assert!(compare_runs(&[a, b]).unwrap_err()[0].contains("turn 4 on machine 0"));
/// ```
pub fn compare_runs(runs: &[ChecksumLog]) -> Result<Vec<String>, Vec<String>> {
    let Some((first, rest)) = runs.split_first() else {
        return Ok(Vec::new());
    };
    let mut diverged = false;
    let lines = rest
        .iter()
        .enumerate()
        .map(|(at, run)| match first.first_divergence(run) {
            Some(divergence) => {
                diverged = true;
                format!("run {} vs run 1: {divergence}", at + 2)
            }
            None => format!(
                "run {} vs run 1: the same checksums ({} records) on every machine at every \
                 recorded turn",
                at + 2,
                first.records.len()
            ),
        })
        .collect();
    if diverged { Err(lines) } else { Ok(lines) }
}

impl fmt::Display for ChecksumLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (turn, machine, checksum) in self.records() {
            writeln!(f, "checksum {turn} {} {checksum:#018x}", machine.0)?;
        }
        Ok(())
    }
}
