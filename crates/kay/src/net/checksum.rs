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

impl fmt::Display for ChecksumLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (turn, machine, checksum) in self.records() {
            writeln!(f, "checksum {turn} {} {checksum:#018x}", machine.0)?;
        }
        Ok(())
    }
}
