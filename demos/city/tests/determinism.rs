//! The same seed gives the same city, turn by turn, on 1 and 2 threads:
//! the checksum (a hash of every actor's state in ID order) and the
//! figures agree, and a different seed gives a different city.

use city::{City, CityConfig};

fn run(threads: usize, seed: u64) -> (u64, Vec<String>, u64) {
    let mut city = City::new(CityConfig {
        cars: 10_000,
        width: 24,
        height: 24,
        threads,
        seed,
        bus_lines: 2,
        ..CityConfig::default()
    });
    let mut seconds = Vec::new();
    for _ in 0..120 {
        if let Some(totals) = city.step().second {
            seconds.push(format!("{totals:?}"));
        }
    }
    (city.checksum(), seconds, city.car_trips())
}

#[test]
fn same_seed_same_city_on_1_and_2_threads() {
    let one = run(1, 7);
    let two = run(2, 7);
    assert_eq!(one.0, two.0, "checksums differ");
    assert_eq!(one.1, two.1, "per-second figures differ");
    assert_eq!(one.1.len(), 60);
    assert!(one.2 > 0, "cars completed trips");
    let other = run(2, 8);
    assert_ne!(other.0, one.0, "another seed, another city");
}
