//! `ringress-apiserver`: the test API server as a process, for benchmarks and for trying
//! kubectl by hand. Prints its URL, writes a kubeconfig if asked, serves until killed.

use std::net::SocketAddr;

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().and_then(|v| v.parse().ok()).expect("--listen ADDR:PORT"),
            "--kubeconfig" => kubeconfig = args.next(),
            _ => {
                eprintln!("usage: ringress-apiserver [--listen 127.0.0.1:PORT] [--kubeconfig PATH]");
                std::process::exit(2);
            }
        }
    }
    let server = ringress_apiserver::ApiServer::start_on(listen).expect("bind --listen");
    if let Some(path) = kubeconfig {
        server.write_kubeconfig(std::path::Path::new(&path)).expect("write --kubeconfig");
    }
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
