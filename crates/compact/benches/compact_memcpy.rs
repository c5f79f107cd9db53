//! Compacting a 1 MiB `CVec<u64>` versus a plain `memcpy` of the same bytes.
//!
//! The bar: compaction runs at ≥ 50% of memcpy speed, measured in
//! the same run. `cargo bench -p compact --bench compact_memcpy`

use compact::{CVec, Compact, static_size_bytes};
use criterion::{Criterion, Throughput, criterion_main};
use std::hint::black_box;

const BYTES: usize = 1 << 20;
const LEN: usize = BYTES / 8;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("1MiB");
    group.throughput(Throughput::Bytes(BYTES as u64));

    let source: Vec<u64> = (0..LEN as u64).collect();
    let mut dest = vec![0u64; LEN];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dest.copy_from_slice(black_box(&source));
            black_box(&mut dest);
        })
    });

    // Compact a heap CVec into a buffer; then compact back and forth between
    // two buffers (the instance-store move) so no allocation is timed.
    let value: CVec<u64> = source.iter().copied().collect();
    let total = value.total_size_bytes();
    let mut a = vec![0u64; total / 8];
    let mut b_buf = vec![0u64; total / 8];
    let header = static_size_bytes::<CVec<u64>>();
    // SAFETY: `a` is 8-aligned and `total` bytes long; `value` moves into it.
    unsafe {
        let mut value = std::mem::ManuallyDrop::new(value);
        let a_ptr = a.as_mut_ptr().cast::<u8>();
        CVec::compact(&mut *value, a_ptr.cast(), a_ptr.add(header));
    }
    let mut from_a = true;
    group.bench_function("compact CVec<u64>", |bencher| {
        bencher.iter(|| {
            let (src, dst) = if from_a {
                (&mut a, &mut b_buf)
            } else {
                (&mut b_buf, &mut a)
            };
            let s = src.as_mut_ptr().cast::<u8>();
            let d = dst.as_mut_ptr().cast::<u8>();
            // SAFETY: `src` holds a compact CVec<u64> of `total` bytes; `dst`
            // is a disjoint, aligned buffer of the same size. The value moves.
            unsafe { CVec::<u64>::compact(s.cast(), d.cast(), d.add(header)) };
            from_a = !from_a;
            black_box(d);
        })
    });
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
