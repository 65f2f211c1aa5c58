//! nginx (the Debian package) as a real server in tests: TLS upstreams with client
//! certificates, gRPC over TLS in front of a plain gRPC server, gzip for comparisons.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An nginx in the foreground, one process, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
}

impl Nginx {
    /// Runs nginx with `http` as the body of its `http {}` block (files it names can be
    /// written to [`Nginx::dir`] first, through `dir`), and waits until every one of `ports`
    /// on 127.0.0.1 accepts connections.
    pub fn start(dir: PathBuf, http: &str, ports: &[u16]) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{http}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args([
                "-p",
                &d.to_string(),
                "-c",
                &dir.join("nginx.conf").display().to_string(),
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx)");
        let mut n = Nginx { child, dir };
        let until = Instant::now() + Duration::from_secs(10);
        for port in ports {
            while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], *port))).is_err() {
                if let Ok(Some(status)) = n.child.try_wait() {
                    panic!("nginx exited ({status}): {}", n.errors());
                }
                assert!(Instant::now() < until, "nginx never listened on {port}: {}", n.errors());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        n
    }

    /// nginx's error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
