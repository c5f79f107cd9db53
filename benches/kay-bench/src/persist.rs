//! W6: snapshot and load of 1,000,000 actors (`ActorSystem::with_storage`,
//! `snapshot`, `load`) against `cp` of the same bytes on the same disk and
//! against spawning the actors.
//!
//! - `snapshot_gb_per_s`: instance-state bytes over the median time of
//!   `snapshot()`, which returns once the generation is durable (written,
//!   synced, committed).
//! - `pause_ms`: the median pause of `snapshot_in_background()`, which
//!   copies the state and writes it on another thread while the system
//!   goes on (the blocking `snapshot()` pauses for its whole time).
//! - `load_gb_per_s`: the same bytes over the median time of `load()` into
//!   a fresh system (registration not counted).
//! - `cp_gb_per_s`: copying the snapshot's store files to another directory
//!   of the same disk and syncing them (the durability a snapshot gives).
//! - `load_vs_spawn`: `load()` over spawning the same actors (median).
//! - `load_mapped_gb_per_s`, `load_mapped_vs_spawn`: the same, named for
//!   how the default load works (`Config::map_snapshots_on_load`: the
//!   stores mapped copy-on-write from the snapshot).
//! - `load_read_gb_per_s`, `load_read_vs_spawn`: the same with the
//!   snapshot read into memory instead (`map_snapshots_on_load: false`).
//! - `first_turn_ms` (= `first_turn_mapped_ms`), `first_turn_read_ms`: a
//!   turn that writes every actor (W1's `Tick`) right after each kind of
//!   load (median), against `turn_ms`, the same turn once the state is
//!   settled: after a mapped load, the first turn copies the mapped
//!   stores before writing to them.

use std::time::Instant;

use kay::ActorSystem;

use crate::report::{Measurement, Persistence, median, timed};
use crate::workloads::{Mover, Scale, Tick, config, spawn_movers, verify};

/// Runs W6 in a directory under the system's temporary directory.
pub fn w6_snapshot(scale: Scale, reps: usize) -> Vec<Measurement> {
    let n = scale.actors();
    let root = std::env::temp_dir().join(format!("kay-bench-w6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("snapshots");
    // Spawning, in the same kind of system (stores in mmap'ed files).
    let spawn_s = median(reps, || {
        let spawn_dir = root.join("spawn");
        let mut system = ActorSystem::with_storage(&spawn_dir, config()).expect("storage");
        system.register::<Mover>();
        let mut world = system.world();
        let time = timed(|| spawn_movers::<0>(&mut system, &mut world, n));
        verify(
            "W6",
            "all actors spawned",
            system.instance_count::<Mover>() == n,
        );
        time
    });
    let mut system = ActorSystem::with_storage(&dir, config()).expect("storage");
    system.register::<Mover>();
    let mut world = system.world();
    spawn_movers::<0>(&mut system, &mut world, n);
    system.turn();
    let mut state_bytes = 0;
    let snapshot_s = median(reps, || {
        let started = Instant::now();
        let report = system.snapshot().expect("a snapshot");
        state_bytes = report.state_bytes;
        verify("W6", "every actor saved", report.instances == n as u64);
        started.elapsed()
    });
    // The pause of a snapshot written in the background (copy-on-snapshot;
    // waited for before the next one).
    let pause_s = median(reps, || {
        let report = system.snapshot_in_background().expect("a snapshot");
        let written = system
            .wait_for_snapshot()
            .expect("under way")
            .expect("written");
        verify(
            "W6",
            "the background snapshot",
            written.instances == n as u64,
        );
        report.pause
    });
    drop(world);
    drop(system);
    let mut first_turns = [Vec::new(), Vec::new()];
    let mut settled = Vec::new();
    let mut load = |map: bool| {
        let config = kay::Config {
            map_snapshots_on_load: map,
            ..config()
        };
        let mut system = ActorSystem::with_storage(&dir, config).expect("storage");
        system.register::<Mover>();
        let started = Instant::now();
        let report = system.load().expect("a load").expect("a snapshot");
        let took = started.elapsed();
        verify("W6", "every actor loaded", report.instances == n as u64);
        verify("W6", "loaded actors", system.instance_count::<Mover>() == n);
        verify("W6", "mapped or not", (report.mapped_bytes > 0) == map);
        let mut world = system.world();
        let mut turn = || {
            let everyone = world.local_broadcast::<Mover>();
            world.send(everyone, Tick { dt: 0.5 });
            timed(|| {
                system.turn();
            })
        };
        first_turns[usize::from(map)].push(turn());
        if !map {
            turn();
            settled.push(turn());
        }
        took
    };
    let load_read_s = median(reps, || load(false));
    let load_mapped_s = median(reps, || load(true));
    let middle = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    // cp of the newest generation's store files (and sync), same disk.
    let newest = std::fs::read_dir(&dir)
        .expect("the snapshot directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("gen-"))
        })
        .max()
        .expect("a generation");
    let mut copy = 0;
    let cp_s = median(reps, || {
        copy += 1;
        let target = root.join(format!("cp-{copy}"));
        std::fs::create_dir_all(&target).expect("a directory");
        let time = timed(|| {
            for entry in std::fs::read_dir(&newest).expect("the generation") {
                let path = entry.expect("an entry").path();
                if !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("store-"))
                {
                    continue;
                }
                let to = target.join(path.file_name().expect("a name"));
                std::fs::copy(&path, &to).expect("cp");
                std::fs::File::open(&to)
                    .and_then(|f| f.sync_all())
                    .expect("sync");
            }
        });
        let _ = std::fs::remove_dir_all(&target);
        time
    });
    let _ = std::fs::remove_dir_all(&root);
    let gb = state_bytes as f64 / 1e9;
    let first_turn_mapped_ms = middle(std::mem::take(&mut first_turns[1]));
    vec![Measurement {
        workload: "W6",
        what: "snapshot, per actor",
        system: "kay",
        threads: crate::workloads::threads(),
        n,
        median_s: snapshot_s,
        items: n,
        persistence: Some(Persistence {
            snapshot_gb_per_s: gb / snapshot_s,
            load_gb_per_s: gb / load_mapped_s,
            cp_gb_per_s: gb / cp_s,
            pause_ms: pause_s * 1e3,
            load_vs_spawn: load_mapped_s / spawn_s,
            load_mapped_gb_per_s: gb / load_mapped_s,
            load_mapped_vs_spawn: load_mapped_s / spawn_s,
            load_read_gb_per_s: gb / load_read_s,
            load_read_vs_spawn: load_read_s / spawn_s,
            first_turn_ms: first_turn_mapped_ms,
            first_turn_mapped_ms,
            first_turn_read_ms: middle(std::mem::take(&mut first_turns[0])),
            turn_ms: middle(settled),
        }),
        ..Measurement::empty()
    }]
}
