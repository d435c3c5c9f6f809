//! A pipe between two processes: the sender sends, then closes; the receiver reads
//! until end-of-file (Python's `EOFError`).
//!
//! ```python
//! def sender(conn):
//!     for i in range(5):
//!         print(f"发送者: 发送了数据 {i}")
//!         conn.send(i)  # 发送数据
//!         time.sleep(0.5)
//!     conn.close()  # 关闭连接
//!
//! def receiver(conn):
//!     while True:
//!         try:
//!             data = conn.recv()  # 接收数据
//!             print(f"接收者: 接收了数据 {data}")
//!             time.sleep(1)
//!         except EOFError:
//!             print("接收者: 管道已关闭")
//!             break
//!
//! parent_conn, child_conn = multiprocessing.Pipe()
//! sender_process = multiprocessing.Process(target=sender, args=(child_conn,))
//! receiver_process = multiprocessing.Process(target=receiver, args=(parent_conn,))
//! sender_process.start(); receiver_process.start()
//! sender_process.join(); receiver_process.join()
//! print("所有进程执行完毕")
//! ```
//!
//! `recv` returns `Err(Closed)` once the sender closed its end (or its process died)
//! and everything sent has been read. Unlike an OS pipe, the copy of the sending end
//! that the parent still holds does not keep the pipe open.
use multiproc::{Error, Pipe, Process};
use std::time::Duration;

fn sender(mut conn: Pipe) -> multiproc::Result<()> {
    for i in 0..5u32 {
        println!("发送者: 发送了数据 {i}");
        conn.send(&i)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    conn.close();
    Ok(())
}

fn receiver(mut conn: Pipe) -> multiproc::Result<()> {
    loop {
        match conn.recv::<u32>() {
            Ok(data) => {
                println!("接收者: 接收了数据 {data}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(Error::Closed) => {
                println!("接收者: 管道已关闭");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> multiproc::Result<()> {
    let (parent_conn, child_conn) = Pipe::new(4096)?;
    let sender_process = Process::fork(move || sender(child_conn))?;
    let receiver_process = Process::fork(move || receiver(parent_conn))?;
    sender_process.join()?;
    receiver_process.join()?;
    println!("所有进程执行完毕");
    Ok(())
}
