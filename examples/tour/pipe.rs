//! Tour section: pipe — `Pipe` connections and the `SpscQueue` fast path, across
//! real processes.

use crate::common::{fork, name, section, wait};
use multiproc::{Error, Pipe, Role, SpscQueue};
use std::time::{Duration, Instant};

pub fn run() -> multiproc::Result<()> {
    section("pipe: Pipe (messages of any length) and SpscQueue (1:1 records)");
    pipes()?;
    spsc()?;
    Ok(())
}

fn pipes() -> multiproc::Result<()> {
    // An anonymous duplex pipe shared with a forked echo child.
    let (mut a, mut b) = Pipe::new(1 << 20)?;
    let child = fork(move || {
        let mut buf = Vec::new();
        while b.recv_bytes_into(&mut buf).is_ok() {
            if b.send_bytes(&buf).is_err() {
                return 1;
            }
        }
        0
    });
    let mut buf = Vec::with_capacity(64);
    for spin in [true, false] {
        let n = 20_000;
        let t = Instant::now();
        for i in 0..n as u64 {
            a.send_bytes(&i.to_le_bytes())?;
            if spin {
                while a.try_recv_bytes_into(&mut buf).is_err() {}
            } else {
                a.recv_bytes_into(&mut buf)?;
            }
        }
        let how = if spin {
            "spinning recv"
        } else {
            "blocking recv"
        };
        println!(
            "  8 B round trip to a child, {how}: {:.2} us",
            us(t.elapsed()) / n as f64
        );
    }
    let big = vec![0xabu8; 64 << 20];
    a.send_bytes(&big)?; // warm up
    a.recv_bytes_into(&mut buf)?;
    let t = Instant::now();
    a.send_bytes(&big)?;
    a.recv_bytes_into(&mut buf)?;
    let gbs = 2.0 * big.len() as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!(
        "  64 MiB message through a 1 MiB ring, there and back: {gbs:.1} GB/s, arrived whole: {}",
        buf == big
    );
    drop(a); // the child's recv sees Closed (EOF) and it exits
    println!(
        "  child exits on EOF after the parent closes: exit code {}",
        wait(child)
    );

    // A named pipe: the child attaches by name and exchanges serde messages.
    let pname = name("pipe");
    let mut a = Pipe::create(&pname, 4096)?;
    let child = {
        let pname = pname.clone();
        fork(move || {
            let Ok(mut b) = Pipe::open(&pname) else {
                return 1;
            };
            let job: (String, Vec<u32>) = b.recv().unwrap_or_default();
            let _ = b.send(&(job.0.to_uppercase(), job.1.iter().sum::<u32>()));
            0
        })
    };
    a.send(&("job-17".to_owned(), vec![1u32, 2, 3]))?;
    let reply: (String, u32) = a.recv()?;
    println!("  named pipe '{pname}', typed reply from the child: {reply:?}");
    wait(child);
    match Pipe::open(&pname) {
        Err(e) => println!("  reopening its end after the child is gone: {e:?}"),
        Ok(_) => println!("  reopening its end after the child is gone: unexpectedly worked"),
    }

    // A child SIGKILLed in the middle of a long message: no partial message, just EOF.
    let (mut a, mut b) = Pipe::new(4096)?;
    let child = fork(move || {
        let _ = b.send_bytes(&vec![1u8; 1 << 20]); // blocks: nobody reads yet
        0
    });
    a.poll(None)?; // the message has started streaming
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: our child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let t = Instant::now();
    let r = a.recv_bytes();
    println!(
        "  child SIGKILLed mid-message: recv -> {:?} after {:.1} ms (probe interval 10 ms)",
        r.as_ref().map(|m| m.len()).map_err(|e| e.to_string()),
        us(t.elapsed()) / 1e3
    );
    wait(child);
    Ok(())
}

fn spsc() -> multiproc::Result<()> {
    let qname = name("spsc");
    let mut rx = SpscQueue::<u64>::create(&qname, 4096, Role::Consumer)?;
    const N: u64 = 10_000_000;
    let child = {
        let qname = qname.clone();
        fork(move || {
            let Ok(mut tx) = SpscQueue::<u64>::open(&qname, Role::Producer) else {
                return 1;
            };
            for i in 0..N {
                if tx.put(i).is_err() {
                    return 1;
                }
            }
            0
        })
    };
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..N {
        sum = sum.wrapping_add(rx.get()?);
    }
    let rate = N as f64 / t.elapsed().as_secs_f64();
    wait(child);
    println!(
        "  SpscQueue<u64> '{qname}', one put/get per item, 2 processes: {:.1} M msgs/s (sum ok: {})",
        rate / 1e6,
        sum == N * (N - 1) / 2
    );

    // Roles: one live producer at a time; a dead producer's role is taken over.
    let child = {
        let qname = qname.clone();
        fork(move || {
            let Ok(mut tx) = SpscQueue::<u64>::open(&qname, Role::Producer) else {
                return 1;
            };
            let _ = tx.put(42);
            std::thread::sleep(Duration::from_secs(60));
            0
        })
    };
    println!("  got {} from a producer child", rx.get()?);
    match SpscQueue::<u64>::open(&qname, Role::Producer) {
        Err(e @ Error::Busy { .. }) => println!("  second producer refused: {e}"),
        other => println!("  second producer: unexpected {other:?}"),
    }
    // SAFETY: our child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    wait(child);
    let mut tx = SpscQueue::<u64>::open(&qname, Role::Producer)?;
    tx.put(43)?;
    println!("  after SIGKILL its role is taken over: got {}", rx.get()?);
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
