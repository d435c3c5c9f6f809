//! Events: a waiter blocked until a setter sets it, and the tutorial's traffic light
//! (a daemon process switching an event between red and green while cars wait).
//!
//! ```python
//! event = multiprocessing.Event()
//! def waiter():
//!     print("等待者: 等待事件发生...")
//!     event.wait()  # 等待事件被设置
//!     print("等待者: 事件已发生，继续执行")
//! def setter():
//!     print("设置者: 准备触发事件")
//!     time.sleep(3)  # 模拟准备时间
//!     event.set()  # 设置事件
//!     print("设置者: 事件已触发")
//! ...
//! print("所有进程执行完毕")
//!
//! def car(e, car_id):
//!     print(f'car {car_id} is coming ')
//!     if not e.is_set():
//!         print(f'car {car_id} is waiting')
//!         e.wait()
//!     if e.is_set():
//!         print(f'car {car_id} pass the cross road')
//!
//! def traffic_light(e):
//!     while True:
//!         if e.is_set():
//!             time.sleep(2)
//!             print('<<<<<<<<<<<<<<< green to red >>>>>>>>>>>>>>>>>>>')
//!             e.clear()
//!         if not e.is_set():
//!             time.sleep(2)
//!             print('<<<<<<<<<<<<<<< red to green >>>>>>>>>>>>>>>>>>>')
//!             e.set()
//!
//! event = multiprocessing.Event()
//! event.clear()  # red to start with
//! cars = [multiprocessing.Process(target=car, args=(event, car_id)) for car_id in range(10)]
//! lights = multiprocessing.Process(target=traffic_light, args=(event,))
//! lights.daemon = True   # ends with the program once the cars are through
//! lights.start()
//! for each in cars:
//!     each.start()
//!     time.sleep(1)      # a car every second
//! for each in cars:
//!     each.join()
//! ```
use multiproc::{Event, Process, ProcessBuilder};
use std::time::Duration;

fn car(e: &Event, car_id: u32) {
    println!("car {car_id} is coming ");
    if !e.is_set() {
        println!("car {car_id} is waiting");
        e.wait();
    }
    if e.is_set() {
        println!("car {car_id} pass the cross road");
    }
}

fn traffic_light(e: &Event) {
    loop {
        if e.is_set() {
            std::thread::sleep(Duration::from_millis(200));
            println!("<<<<<<<<<<<<<<< green to red >>>>>>>>>>>>>>>>>>>");
            e.clear();
        }
        if !e.is_set() {
            std::thread::sleep(Duration::from_millis(200));
            println!("<<<<<<<<<<<<<<< red to green >>>>>>>>>>>>>>>>>>>");
            e.set();
        }
    }
}

fn main() -> multiproc::Result<()> {
    let pid = std::process::id();
    let event = Event::create(&format!("example-event-{pid}"))?;
    let waiter = Process::fork(|| {
        println!("等待者: 等待事件发生...");
        event.wait();
        println!("等待者: 事件已发生，继续执行");
    })?;
    let setter = Process::fork(|| {
        println!("设置者: 准备触发事件");
        std::thread::sleep(Duration::from_millis(300));
        event.set();
        println!("设置者: 事件已触发");
    })?;
    waiter.join()?;
    setter.join()?;
    println!("所有进程执行完毕");

    let event = Event::create(&format!("example-light-{pid}"))?;
    event.clear(); // red to start with
    let lights = ProcessBuilder::new()
        .daemon(true)
        .fork(|| traffic_light(&event))?;
    let mut cars = Vec::new();
    for car_id in 0..10 {
        cars.push(Process::fork(|| car(&event, car_id))?);
        std::thread::sleep(Duration::from_millis(100));
    }
    for each in &cars {
        each.join()?;
    }
    println!(
        "all cars passed; the daemon traffic light {} ends with us",
        lights.pid()
    );
    Ok(())
}
