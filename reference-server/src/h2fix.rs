//! Accepts the malformed HTTP/2 `:authority` that etcdctl 3.4 sends.
//!
//! etcdctl 3.4's per-endpoint commands (`endpoint status`, `endpoint hashkv`) dial the
//! raw endpoint string, so their requests carry `:authority: http://127.0.0.1:2379`.
//! Go's HTTP/2 server ignores that; Rust's h2 rejects the stream as malformed. This
//! adapter sits between the TCP socket and the HTTP/2 server and rewrites the header
//! blocks the client sends: it decodes each block with the client's HPACK state and
//! re-encodes it as literals without indexing (so the server's HPACK table stays
//! empty and in step), dropping a `scheme://` prefix from `:authority`. Connections
//! that do not start with the HTTP/2 preface (HTTP/1 `/health` requests) pass through
//! untouched, and so does everything the server sends.
//!
//! A client names one authority for a whole connection, so the first header block
//! decides: if its `:authority` is well-formed, that block's original frames and
//! everything after them pass through untouched (the server's HPACK state then follows
//! the client's own, as if this adapter were absent), and only connections that need
//! the fix pay for decoding and re-encoding.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Largest frame payload the server accepts without a SETTINGS change (HTTP/2's default).
const MAX_FRAME: usize = 16_384;
/// Largest header block accepted from a client (bounds memory per connection).
const MAX_HEADER_BLOCK: usize = 1 << 20;

enum Mode {
    /// Still reading the first bytes.
    Sniffing,
    /// HTTP/2, before the first header block decided, or after it asked for the fix:
    /// header blocks are rewritten.
    Rewriting,
    /// Anything else: bytes pass as they are.
    Passthrough,
}

/// A pending header block (HEADERS followed by CONTINUATIONs).
struct Pending {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    /// The frames as received (kept for the first block only, which may pass as is).
    frames: Vec<u8>,
}

/// The rewriting stream; see the module docs.
pub struct FixAuthority<S> {
    inner: S,
    mode: Mode,
    raw: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    decoder: hpack::Decoder<'static>,
    pending: Option<Pending>,
    /// Whether the first header block decided between rewriting and passing through.
    decided: bool,
    eof: bool,
}

impl<S> std::fmt::Debug for FixAuthority<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixAuthority").finish_non_exhaustive()
    }
}

impl<S> FixAuthority<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        FixAuthority {
            inner,
            mode: Mode::Sniffing,
            raw: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            decoder: hpack::Decoder::new(),
            pending: None,
            decided: false,
            eof: false,
        }
    }

    /// Moves every complete unit of `raw` to `out`, rewriting header blocks.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match self.mode {
                Mode::Sniffing => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                    } else if n == PREFACE.len() {
                        self.out.extend_from_slice(PREFACE);
                        self.raw.drain(..PREFACE.len());
                        self.mode = Mode::Rewriting;
                    } else {
                        return Ok(());
                    }
                }
                Mode::Passthrough => {
                    self.out.append(&mut self.raw);
                    return Ok(());
                }
                Mode::Rewriting => {
                    if self.raw.len() < FRAME_HEADER {
                        return Ok(());
                    }
                    let len = (usize::from(self.raw[0]) << 16)
                        | (usize::from(self.raw[1]) << 8)
                        | usize::from(self.raw[2]);
                    if self.raw.len() < FRAME_HEADER + len {
                        return Ok(());
                    }
                    let kind = self.raw[3];
                    let flags = self.raw[4];
                    let stream_id =
                        u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]])
                            & 0x7fff_ffff;
                    let frame: Vec<u8> = self.raw.drain(..FRAME_HEADER + len).collect();
                    let payload = &frame[FRAME_HEADER..];
                    match kind {
                        TYPE_HEADERS => {
                            let mut p = payload;
                            let mut pad = 0usize;
                            if flags & FLAG_PADDED != 0 {
                                let (&n, rest) =
                                    p.split_first().ok_or_else(|| bad("empty padded HEADERS"))?;
                                pad = usize::from(n);
                                p = rest;
                            }
                            let mut priority = None;
                            if flags & FLAG_PRIORITY != 0 {
                                if p.len() < 5 {
                                    return Err(bad("short PRIORITY in HEADERS"));
                                }
                                let mut b = [0u8; 5];
                                b.copy_from_slice(&p[..5]);
                                priority = Some(b);
                                p = &p[5..];
                            }
                            if pad > p.len() {
                                return Err(bad("padding longer than HEADERS"));
                            }
                            let block = p[..p.len() - pad].to_vec();
                            let frames = if self.decided {
                                Vec::new()
                            } else {
                                frame.clone()
                            };
                            self.pending = Some(Pending {
                                stream_id,
                                flags,
                                priority,
                                block,
                                frames,
                            });
                            if flags & FLAG_END_HEADERS != 0 {
                                self.flush_block()?;
                            }
                        }
                        TYPE_CONTINUATION if self.pending.is_some() => {
                            let done = flags & FLAG_END_HEADERS != 0;
                            if let Some(p) = self.pending.as_mut() {
                                if p.block.len() + payload.len() > MAX_HEADER_BLOCK {
                                    return Err(bad("header block too large"));
                                }
                                p.block.extend_from_slice(payload);
                                if !self.decided {
                                    p.frames.extend_from_slice(&frame);
                                }
                            }
                            if done {
                                self.flush_block()?;
                            }
                        }
                        _ => self.out.extend_from_slice(&frame),
                    }
                }
            }
        }
    }

    fn flush_block(&mut self) -> io::Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let headers = self
            .decoder
            .decode(&p.block)
            .map_err(|e| bad(&format!("undecodable header block: {e:?}")))?;
        if !self.decided {
            self.decided = true;
            let malformed = headers
                .iter()
                .any(|(n, v)| n.as_slice() == b":authority" && strip_scheme(v).len() != v.len());
            if !malformed {
                self.out.extend_from_slice(&p.frames);
                self.mode = Mode::Passthrough;
                return Ok(());
            }
        }
        let mut block = Vec::with_capacity(p.block.len() + 64);
        for (name, value) in &headers {
            let value: &[u8] = if name.as_slice() == b":authority" {
                strip_scheme(value)
            } else {
                value
            };
            encode_literal(&mut block, name, value);
        }
        let mut first = true;
        let mut chunks = block.chunks(MAX_FRAME - 5).peekable();
        if chunks.peek().is_none() {
            // An empty block still needs its HEADERS frame.
            write_frame(
                &mut self.out,
                TYPE_HEADERS,
                (p.flags & FLAG_END_STREAM) | FLAG_END_HEADERS | priority_flag(&p),
                p.stream_id,
                p.priority.as_ref().map_or(&[][..], |b| &b[..]),
                &[],
            );
            return Ok(());
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let end = if last { FLAG_END_HEADERS } else { 0 };
            if first {
                let flags = (p.flags & FLAG_END_STREAM) | end | priority_flag(&p);
                write_frame(
                    &mut self.out,
                    TYPE_HEADERS,
                    flags,
                    p.stream_id,
                    p.priority.as_ref().map_or(&[][..], |b| &b[..]),
                    chunk,
                );
                first = false;
            } else {
                write_frame(
                    &mut self.out,
                    TYPE_CONTINUATION,
                    end,
                    p.stream_id,
                    &[],
                    chunk,
                );
            }
        }
        Ok(())
    }
}

fn priority_flag(p: &Pending) -> u8 {
    if p.priority.is_some() {
        FLAG_PRIORITY
    } else {
        0
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("HTTP/2 from client: {what}"),
    )
}

/// `http://host:port` → `host:port`; anything else unchanged.
fn strip_scheme(v: &[u8]) -> &[u8] {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if let Some(rest) = v.strip_prefix(scheme) {
            return rest.strip_suffix(b"/").unwrap_or(rest);
        }
    }
    v
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), first byte ORed with `high`.
fn encode_int(out: &mut Vec<u8>, high: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// "Literal header field without indexing, new name" (RFC 7541 §6.2.2), no Huffman.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_int(out, 0, 7, name.len());
    out.extend_from_slice(name);
    encode_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

fn write_frame(
    out: &mut Vec<u8>,
    kind: u8,
    flags: u8,
    stream_id: u32,
    prefix: &[u8],
    payload: &[u8],
) {
    let len = prefix.len() + payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(payload);
}

impl<S: AsyncRead + Unpin> AsyncRead for FixAuthority<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) {
                // Decided and drained: read straight into the caller's buffer.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    if got.is_empty() {
                        this.eof = true;
                        // Whatever is left unparsed goes out as it is (the server will judge it).
                        let mut rest = std::mem::take(&mut this.raw);
                        this.out.append(&mut rest);
                        continue;
                    }
                    this.raw.extend_from_slice(got);
                    if this.raw.len() > MAX_HEADER_BLOCK + MAX_FRAME * 4 {
                        return Poll::Ready(Err(bad("frame larger than allowed")));
                    }
                    this.process()?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FixAuthority<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The wrapped connection's connect info (its addresses, and its TLS client
/// certificate when it is a [`crate::tls::ServerConn`]) reaches requests unchanged.
impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for FixAuthority<S>
{
    type ConnectInfo = S::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame(&mut v, kind, flags, stream, &[], payload);
        v
    }

    async fn rewrite(input: Vec<u8>) -> Vec<u8> {
        let mut s = FixAuthority::new(std::io::Cursor::new(input));
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    }

    fn decode_headers(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Collect the header block of the first HEADERS (+CONTINUATION) frames after the preface.
        let mut p = &bytes[PREFACE.len()..];
        let mut block = Vec::new();
        while p.len() >= FRAME_HEADER {
            let len = (usize::from(p[0]) << 16) | (usize::from(p[1]) << 8) | usize::from(p[2]);
            let (kind, flags) = (p[3], p[4]);
            let payload = &p[FRAME_HEADER..FRAME_HEADER + len];
            if kind == TYPE_HEADERS || kind == TYPE_CONTINUATION {
                let skip = if kind == TYPE_HEADERS && flags & FLAG_PRIORITY != 0 {
                    5
                } else {
                    0
                };
                block.extend_from_slice(&payload[skip..]);
                if flags & FLAG_END_HEADERS != 0 {
                    break;
                }
            }
            p = &p[FRAME_HEADER + len..];
        }
        hpack::Decoder::new().decode(&block).unwrap()
    }

    #[tokio::test]
    async fn authority_with_scheme_is_stripped_and_the_rest_kept() {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b"te", b"trailers"),
        ];
        let block = hpack::Encoder::new().encode(headers.clone());
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
                                             // HEADERS split across a CONTINUATION, with padding.
        let (a, b) = block.split_at(block.len() / 2);
        let mut padded = vec![3u8];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(TYPE_HEADERS, FLAG_PADDED, 1, &padded));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0")); // DATA
        let out = rewrite(input).await;
        assert!(out.starts_with(PREFACE));
        let got = decode_headers(&out);
        let want: Vec<(Vec<u8>, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_vec(),
                    if *n == b":authority" {
                        b"127.0.0.1:2379".to_vec()
                    } else {
                        v.to_vec()
                    },
                )
            })
            .collect();
        assert_eq!(got, want);
        assert!(out.ends_with(&frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0")));
    }

    #[tokio::test]
    async fn well_formed_connections_pass_through_byte_for_byte() {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/etcdserverpb.KV/Put"),
            (b":authority", b"127.0.0.1:2379"),
        ];
        let mut enc = hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let block = enc.encode(headers.clone());
        let (a, b) = block.split_at(block.len() / 2);
        input.extend(frame(TYPE_HEADERS, 0, 1, a));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
        // A later block indexes into the dynamic table the first one filled: it must
        // reach the server unchanged, or the server's HPACK state would drift.
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &enc.encode(headers.clone()),
        ));
        assert_eq!(rewrite(input.clone()).await, input);
    }

    #[tokio::test]
    async fn http1_passes_through_untouched() {
        let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(rewrite(req.clone()).await, req);
    }

    #[tokio::test]
    async fn large_blocks_are_split_into_continuations() {
        let big = vec![b'v'; 40_000];
        let headers: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b"x-big", &big)];
        let block = hpack::Encoder::new().encode(headers);
        let mut input = PREFACE.to_vec();
        // The client may send a big block in several frames; feed it as HEADERS + CONTINUATIONs.
        let mut chunks = block.chunks(MAX_FRAME).peekable();
        let mut first = true;
        while let Some(c) = chunks.next() {
            let end = if chunks.peek().is_none() {
                FLAG_END_HEADERS
            } else {
                0
            };
            input.extend(frame(
                if first {
                    TYPE_HEADERS
                } else {
                    TYPE_CONTINUATION
                },
                end,
                3,
                c,
            ));
            first = false;
        }
        let out = rewrite(input).await;
        let got = decode_headers(&out);
        assert_eq!(got[1].1.len(), 40_000);
        // No frame over the default maximum.
        let mut p = &out[PREFACE.len()..];
        while p.len() >= FRAME_HEADER {
            let len = (usize::from(p[0]) << 16) | (usize::from(p[1]) << 8) | usize::from(p[2]);
            assert!(len <= MAX_FRAME);
            p = &p[FRAME_HEADER + len..];
        }
    }
}
