//! Operation sequences on a `Queue<u32>` and a `ByteQueue`, checked against a
//! `VecDeque` model: every result must be exactly what the model predicts.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::{ByteQueue, Error, Queue};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Op {
    TryPut(u32),
    PutTimeout(u32),
    TryGet,
    GetTimeout,
    TryPutMany(Vec<u32>),
    TryGetMany(u8),
    Len,
    Close,
    BytesPut(Vec<u8>),
    BytesGetInto(u8),
    BytesTryGet,
}

#[derive(Arbitrary, Debug)]
struct Input {
    cap: u8,
    max_len: u8,
    ops: Vec<Op>,
}

const NO_WAIT: Duration = Duration::from_micros(1);

fuzz_target!(|input: Input| {
    let cap = (input.cap as usize % 16) + 1;
    let max_len = (input.max_len as usize % 40) + 1;
    let q: Queue<u32> = Queue::anonymous(cap).unwrap();
    let bq = ByteQueue::anonymous(cap, max_len).unwrap();
    // Capacity is exact (the ring has the next power of two of slots).
    let real_cap = cap;
    assert_eq!(q.capacity(), real_cap);
    assert_eq!(bq.capacity(), real_cap);
    let mut model: VecDeque<u32> = VecDeque::new();
    let mut bmodel: VecDeque<Vec<u8>> = VecDeque::new();
    let mut closed = false;
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::TryPut(v) | Op::PutTimeout(v) => {
                let r = match op {
                    Op::TryPut(_) => q.try_put(v),
                    _ => q.put_timeout(v, NO_WAIT),
                };
                match r {
                    Ok(()) => {
                        assert!(!closed && model.len() < real_cap);
                        model.push_back(v);
                    }
                    Err(Error::Closed) => assert!(closed),
                    Err(Error::Full) | Err(Error::Timeout) => {
                        assert!(!closed && model.len() == real_cap)
                    }
                    Err(e) => panic!("put: {e}"),
                }
            }
            Op::TryGet | Op::GetTimeout => {
                let r = match op {
                    Op::TryGet => q.try_get(),
                    _ => q.get_timeout(NO_WAIT),
                };
                match r {
                    Ok(v) => assert_eq!(Some(v), model.pop_front()),
                    Err(Error::Closed) => assert!(closed && model.is_empty()),
                    Err(Error::Empty) | Err(Error::Timeout) => {
                        assert!(!closed && model.is_empty())
                    }
                    Err(e) => panic!("get: {e}"),
                }
            }
            Op::TryPutMany(vs) => match q.try_put_many(&vs) {
                Ok(n) => {
                    assert!(!closed || vs.is_empty());
                    assert_eq!(n, vs.len().min(real_cap - model.len()));
                    model.extend(&vs[..n]);
                }
                Err(Error::Closed) => assert!(closed),
                Err(e) => panic!("put_many: {e}"),
            },
            Op::TryGetMany(n) => {
                let mut buf = vec![0u32; n as usize % 20];
                match q.try_get_many(&mut buf) {
                    Ok(k) => {
                        assert_eq!(k, buf.len().min(model.len()));
                        for v in &buf[..k] {
                            assert_eq!(Some(*v), model.pop_front());
                        }
                    }
                    Err(Error::Closed) => assert!(closed && model.is_empty()),
                    Err(e) => panic!("get_many: {e}"),
                }
            }
            Op::Len => {
                assert_eq!(q.len(), model.len());
                assert_eq!(bq.len(), bmodel.len());
                assert_eq!(q.is_full(), model.len() == real_cap);
            }
            Op::Close => {
                q.close();
                bq.close();
                closed = true;
            }
            Op::BytesPut(m) => match bq.try_put(&m) {
                Ok(()) => {
                    assert!(!closed && m.len() <= max_len && bmodel.len() < real_cap);
                    bmodel.push_back(m);
                }
                Err(Error::TooLarge { len, max }) => {
                    assert!(len == m.len() && max == max_len && len > max)
                }
                Err(Error::Closed) => assert!(closed),
                Err(Error::Full) => assert!(bmodel.len() == real_cap),
                Err(e) => panic!("bytes put: {e}"),
            },
            Op::BytesGetInto(n) => {
                let mut buf = vec![0u8; n as usize % 48];
                match bq.try_get_into(&mut buf) {
                    Ok(k) => {
                        let m = bmodel.pop_front().expect("model has a message");
                        assert_eq!(&buf[..k], &m[..]);
                    }
                    Err(Error::TooLarge { len, max }) => {
                        assert_eq!(max, buf.len());
                        assert_eq!(Some(len), bmodel.front().map(|m| m.len()));
                        assert!(len > max);
                    }
                    Err(Error::Closed) => assert!(closed && bmodel.is_empty()),
                    Err(Error::Empty) => assert!(!closed && bmodel.is_empty()),
                    Err(e) => panic!("bytes get_into: {e}"),
                }
            }
            Op::BytesTryGet => match bq.try_get() {
                Ok(m) => assert_eq!(Some(m), bmodel.pop_front()),
                Err(Error::Closed) => assert!(closed && bmodel.is_empty()),
                Err(Error::Empty) => assert!(!closed && bmodel.is_empty()),
                Err(e) => panic!("bytes get: {e}"),
            },
        }
    }
});
