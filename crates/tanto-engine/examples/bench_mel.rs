//! Whisper front-end timings: the log-mel spectrogram of 30 s (short-form)
//! and 60 s (long-form) of audio, and decoding plus resampling a 60 s
//! 44.1 kHz stereo WAV to 16 kHz mono.
//!
//!     bench_mel [--runs N] [--mels 80|128] [--threads N]

use std::time::{Duration, Instant};

use tanto_engine::audio::decode::decode;
use tanto_engine::audio::mel::LogMel;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    std::hint::black_box(f()); // warm-up
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    t.sort();
    (t[0], t[t.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut mels) = (20usize, 80usize);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--runs" => runs = num("--runs").max(1),
            "--mels" => mels = num("--mels"),
            "--threads" => {
                let n = num("--threads");
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global()
                    .expect("rayon pool");
            }
            other => panic!("unknown argument {other}"),
        }
    }
    // A chirp with some noise: every bin busy.
    let signal = |secs: usize| -> Vec<f32> {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        (0..secs * 16_000)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let t = i as f32 / 16_000.0;
                0.3 * (t * (200.0 + 100.0 * t) * std::f32::consts::TAU).sin()
                    + 0.01 * ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            })
            .collect()
    };
    println!(
        "threads: {} (rayon), runs: {runs}, n_mels: {mels}",
        rayon::current_num_threads()
    );
    let start = Instant::now();
    let mel = LogMel::new(mels);
    println!("LogMel::new: {:.3} ms", ms(start.elapsed()));

    let x30 = signal(30);
    let (min, med) = time(runs, || mel.compute(&x30));
    println!(
        "mel 30 s (compute):      min {:.2} ms, median {:.2} ms",
        ms(min),
        ms(med)
    );
    let x60 = signal(60);
    let (min, med) = time(runs, || mel.compute_long(&x60));
    println!(
        "mel 60 s (compute_long): min {:.2} ms, median {:.2} ms",
        ms(min),
        ms(med)
    );

    // 60 s of 44.1 kHz stereo s16 as a WAV in memory.
    let n = 60 * 44_100;
    let mut wav = Vec::with_capacity(44 + 4 * n);
    let data_len = (4 * n) as u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (2 << 16), 44_100, 44_100 * 4, 4 | (16 << 16)] {
        wav.extend_from_slice(&v.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let s = ((i as f32 * 0.0627).sin() * 8000.0) as i16;
        wav.extend_from_slice(&s.to_le_bytes());
        wav.extend_from_slice(&(s / 2).to_le_bytes());
    }
    let (min, med) = time(runs.min(5), || {
        decode(&wav, Some("bench.wav")).expect("decode")
    });
    println!(
        "decode 60 s 44.1 kHz stereo WAV to 16 kHz mono: min {:.2} ms, median {:.2} ms",
        ms(min),
        ms(med)
    );
}
