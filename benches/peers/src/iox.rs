//! iceoryx2 publish-subscribe peer for `cargo bench --bench versus`.
//!
//! * `iox-peer throughput N`: a publisher process (this binary, re-executed) sends
//!   N u64 samples with back-pressure; this process receives them, spinning.
//!   Prints `rate <samples per second>`, timed from the first sample to the last.
//!   The publisher stays alive until this process has received them all (its stdin
//!   is closed then): a publisher that exits takes its undelivered samples with it.
//! * `iox-peer pingpong N`: a u64 bounced N times between this process and an echo
//!   process over two services, both sides spinning. Prints `rtt_ns <ns>`.

use iceoryx2::prelude::*;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn service(
    node: &Node<ipc::Service>,
    name: &str,
    buffer: usize,
) -> Res<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>> {
    Ok(node
        .service_builder(&name.try_into()?)
        .publish_subscribe::<u64>()
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .enable_safe_overflow(false)
        .open_or_create()?)
}

fn spawn(args: &[&str]) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tag = format!("mpbench-{}", std::process::id());
    match args.get(1).map(String::as_str) {
        Some("throughput") => throughput(&tag, n),
        Some("pingpong") => pingpong(&tag, n),
        Some("role-pub") => publisher(&args[3], n),
        Some("role-echo") => echo(&args[3], n),
        _ => Err("usage: iox-peer throughput|pingpong N".into()),
    }
}

const BUFFER: usize = 4096;

fn throughput(tag: &str, n: u64) -> Res<()> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let name = format!("{tag}/stream");
    let svc = service(&node, &name, BUFFER)?;
    let sub = svc.subscriber_builder().create()?;
    let mut child = spawn(&["role-pub", &n.to_string(), &name])?;
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut start = None;
    while got < n {
        match sub.receive()? {
            Some(s) => {
                start.get_or_insert_with(Instant::now);
                sum = sum.wrapping_add(*s);
                got += 1;
            }
            None => core::hint::spin_loop(),
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    drop(child.stdin.take()); // all received: the publisher may go
    child.wait()?;
    assert_eq!(sum, n * (n - 1) / 2, "samples lost or duplicated");
    println!("rate {}", (n - 1) as f64 / secs);
    Ok(())
}

fn publisher(name: &str, n: u64) -> Res<()> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let svc = service(&node, name, BUFFER)?;
    let publ = svc
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    for i in 0..n {
        send_reaching(&publ, i)?;
    }
    // Undelivered samples live in this process's data segment: stay until the
    // subscriber has them all (it closes our stdin then, or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// Sends `v`, again until it reaches a subscriber: a sample that reached none was
/// dropped, not delivered — until a subscriber has connected to a new publisher's
/// data segment (it does so asynchronously, while receiving), sends can reach nobody,
/// and the receiving side would wait forever for the lost ones.
fn send_reaching(
    publ: &iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>,
    v: u64,
) -> Res<()> {
    while publ.loan_uninit()?.write_payload(v).send()? == 0 {
        std::thread::yield_now();
    }
    Ok(())
}

fn pingpong(tag: &str, n: u64) -> Res<()> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let ping = service(&node, &format!("{tag}/ping"), 16)?;
    let pong = service(&node, &format!("{tag}/pong"), 16)?;
    let sub = pong.subscriber_builder().create()?;
    let publ = ping.publisher_builder().create()?;
    let mut child = spawn(&["role-echo", &n.to_string(), tag])?;
    // Wait for the echo process to connect.
    while ping.dynamic_config().number_of_subscribers() == 0 {
        std::thread::yield_now();
    }
    let warm = n / 10;
    let mut start = Instant::now();
    for i in 0..n {
        if i == warm {
            start = Instant::now();
        }
        send_reaching(&publ, i)?;
        loop {
            if let Some(s) = sub.receive()? {
                assert_eq!(*s, i);
                break;
            }
            core::hint::spin_loop();
        }
    }
    let per = start.elapsed().as_nanos() as f64 / (n - warm) as f64;
    child.wait()?;
    println!("rtt_ns {per}");
    Ok(())
}

fn echo(tag: &str, n: u64) -> Res<()> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let ping = service(&node, &format!("{tag}/ping"), 16)?;
    let pong = service(&node, &format!("{tag}/pong"), 16)?;
    let sub = ping.subscriber_builder().create()?;
    let publ = pong.publisher_builder().create()?;
    // The parent's subscriber exists already; wait for our publisher to see it.
    for _ in 0..n {
        let v = loop {
            if let Some(s) = sub.receive()? {
                break *s;
            }
            core::hint::spin_loop();
        };
        send_reaching(&publ, v)?;
    }
    Ok(())
}
