//! A small HTTP/1.1 upstream for the bundled example (`--demo-upstream`), on its own threads:
//! answers every request with a short text naming the request, so a first `curl` through the
//! proxy shows a real upstream answering.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

pub fn serve(listener: TcpListener) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = handle(conn);
        });
    }
}

fn handle(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let host = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host"));
                let host = host.map(|h| String::from_utf8_lossy(h.value).into_owned()).unwrap_or_default();
                let xff = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"));
                let xff = xff.map(|h| String::from_utf8_lossy(h.value).into_owned()).unwrap_or_default();
                let body = format!(
                    "hello from the ringress demo upstream\nmethod={} path={} host={} x-forwarded-for={}\n",
                    req.method.unwrap_or(""),
                    req.path.unwrap_or(""),
                    host,
                    xff
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(resp.as_bytes())?;
                buf.drain(..n);
                continue;
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Ok(()),
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
