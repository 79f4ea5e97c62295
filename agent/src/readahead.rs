//! Reading ahead on a thread of its own.
//!
//! With more than one thread, the parsing thread is the one everything waits for; reading the
//! export, hashing it (SHA-256 of the file as dropped) and transcoding it are not parsing, so a
//! [`ReadAhead`] does them on a thread beside it, a few chunks ahead. The bytes, their order, the
//! errors and where they occur are those of the reader it wraps. It does not interpret bytes.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead at most.
const AHEAD: usize = 4;

/// The bytes of a reader, read ahead by a thread.
pub struct ReadAhead {
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    /// Chunks handed back for the thread to fill again.
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    handle: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `inner` on a new thread.
    pub fn spawn(mut inner: Box<dyn Read + Send>) -> io::Result<Self> {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (back, recycled) = sync_channel::<Vec<u8>>(AHEAD + 2);
        let handle = std::thread::Builder::new()
            .name("read".into())
            .spawn(move || {
                loop {
                    let mut buf = recycled.try_recv().unwrap_or_default();
                    buf.resize(CHUNK, 0);
                    let (n, err) = fill(&mut inner, &mut buf);
                    buf.truncate(n);
                    // the bytes before an error, then the error itself, then nothing: an
                    // error is never read again (a decoder past bad bytes would not repeat it)
                    // the reader went away (stopped early): nothing more to do
                    if (n > 0 || err.is_none()) && tx.send(Ok(buf)).is_err() {
                        return;
                    }
                    if let Some(e) = err {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if n == 0 {
                        return;
                    }
                }
            })?;
        Ok(Self {
            rx: Some(rx),
            back,
            cur: Vec::new(),
            pos: 0,
            done: false,
            handle: Some(handle),
        })
    }
}

/// Reads into `buf` until it is full, the input ends (0 bytes: the end) or a read fails; the
/// bytes read, and the error that stopped it.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.cur.len() && !self.done {
            let Some(rx) = self.rx.as_ref() else {
                return Ok(&[]);
            };
            match rx.recv() {
                Ok(Ok(buf)) => {
                    let old = std::mem::replace(&mut self.cur, buf);
                    let _ = self.back.try_send(old);
                    self.pos = 0;
                    self.done = self.cur.is_empty();
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the reading thread stopped"));
                }
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // the thread's next send fails and it ends
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in reads of odd sizes, then fails if `fail` is set (again and again, or
    /// once with `once`: then the input goes on, as a decoder past bad bytes would).
    struct Dribble {
        data: Vec<u8>,
        at: usize,
        fail: bool,
        once: Option<usize>,
    }

    impl Read for Dribble {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.once == Some(self.at) {
                self.once = None;
                return Err(io::Error::other("bad bytes"));
            }
            if self.at == self.data.len() {
                return if self.fail {
                    Err(io::Error::other("disk gone"))
                } else {
                    Ok(0)
                };
            }
            let n = out.len().min(7777).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_byte_comes_through_in_order() {
        for n in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 12_345] {
            let d = data(n);
            let src = Dribble {
                data: d.clone(),
                at: 0,
                fail: false,
                once: None,
            };
            let mut r = ReadAhead::spawn(Box::new(src)).unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert!(got == d, "{n} bytes");
            assert_eq!(r.read(&mut [0; 8]).unwrap(), 0, "the end stays the end");
        }
    }

    #[test]
    fn an_error_comes_after_the_bytes_before_it() {
        let d = data(2 * CHUNK + 5);
        let src = Dribble {
            data: d.clone(),
            at: 0,
            fail: true,
            once: None,
        };
        let mut r = ReadAhead::spawn(Box::new(src)).unwrap();
        let mut got = vec![0u8; d.len()];
        r.read_exact(&mut got).unwrap();
        assert!(got == d);
        let e = r.read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.to_string(), "disk gone");
    }

    #[test]
    fn an_error_that_would_not_happen_again_is_not_lost() {
        // fails once in the middle of a chunk, at a read boundary, then would go on
        for at in [7777 * 3, CHUNK + 7777 * 2] {
            let d = data(3 * CHUNK);
            let src = Dribble {
                data: d.clone(),
                at: 0,
                fail: false,
                once: Some(at),
            };
            let mut r = ReadAhead::spawn(Box::new(src)).unwrap();
            let mut got = Vec::new();
            let e = r.read_to_end(&mut got).unwrap_err();
            assert_eq!(e.to_string(), "bad bytes");
            assert!(got == d[..at], "the bytes before it, then the error");
            assert_eq!(r.read(&mut [0; 8]).unwrap(), 0, "and nothing after it");
        }
    }

    #[test]
    fn stopping_early_ends_the_thread() {
        let src = std::io::repeat(b'x').take(1 << 40);
        let mut r = ReadAhead::spawn(Box::new(src)).unwrap();
        let mut b = [0u8; 10];
        r.read_exact(&mut b).unwrap();
        drop(r); // joins: the test would hang if the thread went on reading
    }
}
